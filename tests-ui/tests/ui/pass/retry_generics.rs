#![deny(warnings)]
//! Generics, where clauses, lifetimes, `impl Trait` arguments and returns, `?` conversions.

use std::fmt::Display;

use resilience::retry;

#[derive(Debug)]
pub enum AppError {
    Io(std::io::Error),
    Parse(std::num::ParseIntError),
}

impl From<std::io::Error> for AppError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<std::num::ParseIntError> for AppError {
    fn from(e: std::num::ParseIntError) -> Self {
        Self::Parse(e)
    }
}

impl resilience::retry::Retryable for AppError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Io(e) => resilience::retry::Retryable::is_retryable(e),
            Self::Parse(_) => false,
        }
    }
}

#[retry]
pub async fn parse_all<T, I>(items: I) -> Result<Vec<T>, AppError>
where
    T: std::str::FromStr<Err = std::num::ParseIntError>,
    I: IntoIterator<Item = String> + Clone,
{
    let mut out = Vec::new();
    for item in items {
        out.push(item.parse::<T>()?);
    }
    Ok(out)
}

#[retry(max_attempts = 2, initial_delay_ms = 1, max_delay_ms = 1)]
pub async fn first_word<'a>(text: &'a str, _label: impl Display + Clone) -> Result<&'a str, AppError> {
    text.split(' ').next().ok_or_else(|| std::io::Error::other("empty").into())
}

#[retry(preset = "aggressive")]
pub async fn shown(n: u32) -> Result<impl Display, AppError> {
    if n == 0 {
        return Err(std::io::Error::other("zero").into());
    }
    Ok(n * 2)
}

#[retry(backoff = "exponential-jitter", max_attempts = 4, total_timeout_ms = 1000)]
pub fn sync_parse(text: &str) -> Result<u64, AppError> {
    #![allow(clippy::needless_question_mark)]
    Ok(text.trim().parse::<u64>()?)
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let _ = parse_all::<u32, _>(vec!["1".to_string()]).await;
    let _ = first_word("a b", "label").await;
    if let Ok(v) = shown(2).await {
        println!("{v}");
    }
    let _ = sync_parse("3");
}
