//! The response future shared by layers that may refuse a call before it runs.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

pin_project! {
    /// Either the inner service's response future or an immediate rejection.
    pub struct RejectOr<F, E> {
        #[pin]
        state: State<F, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        Admitted { #[pin] fut: F },
        // Taken once when polled.
        Rejected { error: Option<E> },
    }
}

impl<F, E> RejectOr<F, E> {
    /// The call was admitted: poll `fut`.
    pub fn admitted(fut: F) -> Self {
        Self {
            state: State::Admitted { fut },
        }
    }

    /// The call was refused with `error`.
    pub fn rejected(error: E) -> Self {
        Self {
            state: State::Rejected { error: Some(error) },
        }
    }
}

impl<F, T, E> Future for RejectOr<F, E>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Admitted { fut } => fut.poll(cx),
            StateProj::Rejected { error } => match error.take() {
                Some(e) => Poll::Ready(Err(e)),
                // Polled again after completion (a caller's contract violation): stay pending
                // rather than panic in library code.
                None => Poll::Pending,
            },
        }
    }
}
