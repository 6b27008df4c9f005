//! The queue side on bullmq: add, count, inspect, pause.

use std::future::IntoFuture;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bullmq::options::QueueOptions;
use bullmq::types::{BackoffStrategy, KeepJobs, RemoveOnFinish};

use super::super::backend::{
    BoxFuture, JobCounts, JobInfo, JobState, NewJob, Processor, QueueBackend, WorkerBackend,
    WorkerSettings,
};
use super::super::error::QueueError;
use super::super::options::{JobOptions, Retention};
use super::backoff::backoff_type;
use super::config::RedisJobsConfig;
use super::connect::{master_addr, probe, queue_error, within};
use super::worker::RedisWorker;

/// A queue on Redis through bullmq.
pub(crate) struct RedisQueue {
    /// `None` once closed (dropping it closes its connection).
    queue: ArcSwapOption<bullmq::Queue>,
    config: RedisJobsConfig,
    /// The name bullmq uses (`{name}` on a Cluster).
    bull_name: String,
}

impl RedisQueue {
    /// Connects (probe first, then bullmq), within the connect timeout.
    pub(crate) async fn connect(name: &str, config: RedisJobsConfig) -> Result<Self, QueueError> {
        let addr = master_addr(&config).await?;
        probe(&config, addr.as_ref()).await?;
        let conn = config
            .bullmq_connection(addr.as_ref().map(|(h, p)| (h.as_str(), *p)))
            .map_err(queue_error)?;
        let bull_name = config.bullmq_queue_name(name);
        let opts = QueueOptions::new()
            .connection(conn)
            .prefix(config.prefix.clone());
        let queue = within(
            config.redis.connect_timeout,
            "connect",
            bullmq::Queue::with_options(&bull_name, opts),
        )
        .await?;
        Ok(Self {
            queue: ArcSwapOption::from_pointee(queue),
            config,
            bull_name,
        })
    }

    fn queue(&self) -> Result<std::sync::Arc<bullmq::Queue>, QueueError> {
        self.queue.load_full().ok_or(QueueError::Closed)
    }

    /// The per-call deadline: the config's response timeout, one per started thousand jobs
    /// for a bulk add.
    fn deadline(&self, jobs: usize) -> Duration {
        let per = u32::try_from(jobs.div_ceil(1000))
            .unwrap_or(u32::MAX)
            .max(1);
        self.config.redis.response_timeout.saturating_mul(per)
    }
}

/// Our options as bullmq's. Priority 0 (`Level(0)`) is "not prioritized", as BullMQ means it;
/// attempts come from the retry policy; the backoff is ours (custom type, see `backoff`), with
/// the per-attempt timeout in its type string.
pub(crate) fn bull_options(o: &JobOptions) -> bullmq::JobOptions {
    let mut b = bullmq::JobOptions::new()
        .attempts(o.max_attempts())
        .backoff(BackoffStrategy::Custom(backoff_type(o.attempt_timeout())));
    let level = o.priority_level();
    if level > 0 {
        b = b.priority(level);
    }
    if let Some(d) = o.delay_value().filter(|d| !d.is_zero()) {
        b = b.delay(d);
    }
    if let Some(id) = o.id_value() {
        b = b.job_id(id);
    }
    if o.lifo {
        b = b.lifo();
    }
    b.remove_on_complete = retention(o.remove_on_complete);
    b.remove_on_fail = retention(o.remove_on_fail);
    b
}

fn retention(r: Retention) -> Option<RemoveOnFinish> {
    match r {
        Retention::KeepAll
        | Retention::Keep {
            count: None,
            age: None,
        } => None,
        Retention::RemoveAll => Some(RemoveOnFinish::Bool(true)),
        Retention::Keep {
            count: Some(n),
            age: None,
        } => Some(RemoveOnFinish::Count(n)),
        Retention::Keep {
            count,
            age: Some(a),
        } => Some(RemoveOnFinish::Options(KeepJobs {
            // BullMQ's age is in whole seconds; round up, so a short age never means "none".
            age: Some(a.as_secs() + u64::from(a.subsec_nanos() > 0)),
            count,
            limit: None,
        })),
    }
}

fn state(s: bullmq::JobState) -> JobState {
    match s {
        bullmq::JobState::Waiting | bullmq::JobState::Prioritized => JobState::Waiting,
        bullmq::JobState::Active => JobState::Active,
        // Waiting for children is "not ready yet"; our jobs have none.
        bullmq::JobState::Delayed | bullmq::JobState::WaitingChildren => JobState::Delayed,
        bullmq::JobState::Completed => JobState::Completed,
        bullmq::JobState::Failed => JobState::Failed,
        _ => JobState::Unknown,
    }
}

impl QueueBackend for RedisQueue {
    fn add(&self, job: NewJob) -> BoxFuture<'_, Result<String, QueueError>> {
        Box::pin(async move {
            let q = self.queue()?;
            let opts = bull_options(&job.opts);
            let added = within(
                self.deadline(1),
                "add",
                q.add(&job.name, job.data).options(opts).into_future(),
            )
            .await?;
            Ok(added.id().to_owned())
        })
    }

    fn add_bulk(&self, jobs: Vec<NewJob>) -> BoxFuture<'_, Result<Vec<String>, QueueError>> {
        Box::pin(async move {
            let q = self.queue()?;
            let n = jobs.len();
            let bulk = jobs
                .into_iter()
                .map(|j| {
                    let opts = bull_options(&j.opts);
                    bullmq::BulkJob::with_options(j.name, j.data, opts)
                })
                .collect();
            let added = within(self.deadline(n), "add_bulk", q.add_bulk(bulk)).await?;
            Ok(added.iter().map(|j| j.id().to_owned()).collect())
        })
    }

    fn counts(&self) -> BoxFuture<'_, Result<JobCounts, QueueError>> {
        Box::pin(async move {
            let q = self.queue()?;
            let c = within(self.deadline(1), "counts", q.get_job_counts()).await?;
            Ok(JobCounts {
                waiting: c.waiting + c.prioritized + c.paused,
                active: c.active,
                delayed: c.delayed,
                completed: c.completed,
                failed: c.failed,
            })
        })
    }

    fn oldest_waiting_ms(&self) -> BoxFuture<'_, Result<Option<u64>, QueueError>> {
        Box::pin(async move {
            let q = self.queue()?;
            within(self.deadline(1), "oldest_waiting", oldest_ready(&q)).await
        })
    }

    fn job(&self, id: &str) -> BoxFuture<'_, Result<Option<JobInfo>, QueueError>> {
        let id = id.to_owned();
        Box::pin(async move {
            let q = self.queue()?;
            // State first: a job seen finished has its result in the hash read after (one
            // script moves it and writes both); the other order could pair a finished state
            // with the hash of before.
            let fetch = async {
                let s = q.get_job_state(&id).await?;
                let Some(job) = q.get_job(&id).await? else {
                    return Ok(None);
                };
                Ok(Some((job, s)))
            };
            let Some((job, s)) = within(self.deadline(1), "job", fetch).await? else {
                return Ok(None);
            };
            let result = Some(job.returnvalue())
                .filter(|r| !r.is_empty())
                .and_then(|r| serde_json::from_str(r).ok());
            Ok(Some(JobInfo {
                id,
                name: job.name().to_owned(),
                state: state(s),
                data: job.data().clone(),
                attempts_made: job.attempts_made(),
                result,
                failed_reason: Some(job.failed_reason())
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned),
                priority: job.priority(),
                timestamp_ms: job.timestamp(),
            }))
        })
    }

    fn pause(&self) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            let q = self.queue()?;
            within(self.deadline(1), "pause", q.pause()).await
        })
    }

    fn resume(&self) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            let q = self.queue()?;
            within(self.deadline(1), "resume", q.resume()).await
        })
    }

    fn worker(
        &self,
        processor: Processor,
        settings: WorkerSettings,
    ) -> BoxFuture<'_, Result<Box<dyn WorkerBackend>, QueueError>> {
        Box::pin(async move {
            self.queue()?;
            let w = RedisWorker::start(&self.config, &self.bull_name, processor, settings).await?;
            Ok(Box::new(w) as Box<dyn WorkerBackend>)
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // bullmq closes a connection when its last handle is dropped.
            self.queue.store(None);
        })
    }
}

/// When the job served next became ready (its timestamp + delay): the end of the wait list
/// (or of the paused list) and the head of the prioritized set, whichever is older.
async fn oldest_ready(q: &bullmq::Queue) -> Result<Option<u64>, bullmq::Error> {
    let keys = q.keys();
    let mut conn = q.connection().connection();
    let (wait, paused, prioritized): (Option<String>, Option<String>, Vec<String>) =
        ::redis::pipe()
            .cmd("LINDEX")
            .arg(keys.wait())
            .arg(-1)
            .cmd("LINDEX")
            .arg(keys.paused())
            .arg(-1)
            .cmd("ZRANGE")
            .arg(keys.prioritized())
            .arg(0)
            .arg(0)
            .query_async(&mut conn)
            .await?;
    let ids: Vec<String> = wait.into_iter().chain(paused).chain(prioritized).collect();
    if ids.is_empty() {
        return Ok(None);
    }
    let mut pipe = ::redis::pipe();
    for id in &ids {
        pipe.cmd("HMGET")
            .arg(keys.job_key(id))
            .arg("timestamp")
            .arg("delay");
    }
    let rows: Vec<(Option<u64>, Option<u64>)> = pipe.query_async(&mut conn).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(ts, delay)| ts.map(|t| t.saturating_add(delay.unwrap_or(0))))
        .min())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::JobPriority;

    #[test]
    fn options_map_to_bullmq() {
        let o = bull_options(&JobOptions::new());
        assert_eq!(o.priority, Some(3));
        assert_eq!(o.attempts, Some(3));
        assert!(matches!(o.backoff, Some(BackoffStrategy::Custom(ref t)) if t == "resilience"));
        assert!(o.delay.is_none() && o.job_id.is_none() && o.lifo.is_none());
        assert!(o.remove_on_complete.is_none() && o.remove_on_fail.is_none());

        let o = bull_options(
            &JobOptions::new()
                .priority(JobPriority::Level(0))
                .delay(Duration::from_millis(1500))
                .job_id("a-1")
                .timeout(Duration::from_secs(2))
                .lifo()
                .remove_on_complete(Retention::RemoveAll)
                .remove_on_fail(Retention::Keep {
                    count: Some(10),
                    age: Some(Duration::from_millis(1500)),
                }),
        );
        assert_eq!(o.priority, None, "level 0 is BullMQ's 'no priority'");
        assert_eq!(o.delay, Some(1500));
        assert_eq!(o.job_id.as_deref(), Some("a-1"));
        assert_eq!(o.lifo, Some(true));
        assert!(
            matches!(o.backoff, Some(BackoffStrategy::Custom(ref t)) if t == "resilience;timeout_ms=2000")
        );
        assert!(matches!(
            o.remove_on_complete,
            Some(RemoveOnFinish::Bool(true))
        ));
        assert!(matches!(
            o.remove_on_fail,
            Some(RemoveOnFinish::Options(KeepJobs {
                age: Some(2),
                count: Some(10),
                limit: None
            }))
        ));
        assert!(matches!(
            retention(Retention::count(5)),
            Some(RemoveOnFinish::Count(5))
        ));
        assert!(retention(Retention::KeepAll).is_none());
        // A zero delay is no delay (it would pick the delayed-add script for nothing).
        assert!(
            bull_options(&JobOptions::new().delay(Duration::ZERO))
                .delay
                .is_none()
        );
    }
}
