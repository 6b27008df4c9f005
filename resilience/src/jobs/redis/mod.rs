//! BullMQ on Redis through bullmq-official. (Placeholder: being written.)
