//! The state of one in-memory queue, kept behind one mutex: jobs by key, the ready levels, the
//! delayed set, the finished lists, the rate-limit window, and which worker slots are idle.
//! Every method is a short, non-blocking critical section; nothing here awaits.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::levels::{Key, KeyMap, Levels};
use crate::jobs::backend::{JobCounts, JobInfo, JobRun, JobState, NewJob, Outcome};
use crate::jobs::options::Retention;

/// One stored job.
#[derive(Debug)]
struct Job {
    /// The id the producer gave; `None`: the id is the key's decimal form.
    custom_id: Option<Box<str>>,
    name: String,
    data: serde_json::Value,
    priority: u32,
    lifo: bool,
    max_attempts: u32,
    timeout: Option<Duration>,
    delay: Duration,
    remove_on_complete: Retention,
    remove_on_fail: Retention,
    timestamp_ms: u64,
    attempts_made: u32,
    state: JobState,
    result: Option<serde_json::Value>,
    failed_reason: Option<String>,
    finished_at: Option<Instant>,
    /// While active: the worker running it and the token of that take.
    lease: Option<(u64, u64)>,
}

impl Job {
    fn id(&self, key: Key) -> String {
        self.custom_id
            .as_deref()
            .map_or_else(|| key.to_string(), str::to_owned)
    }
}

/// A worker's concurrency slot as the store sees it.
#[derive(Debug)]
pub(super) struct Slot {
    /// Unique within the queue (names the timer holder).
    pub id: u64,
    /// The worker it belongs to.
    pub worker: u64,
    /// Handed to every job it runs; fires when the worker gives up on them.
    pub cancel: CancellationToken,
    /// Counted in [`State::idle`].
    pub idle: bool,
}

/// The outcome of a finished attempt, to record.
#[derive(Debug)]
pub(super) struct Done {
    pub key: Key,
    pub token: u64,
    pub outcome: Outcome,
}

/// What a slot does next.
#[derive(Debug)]
pub(super) enum Step {
    /// Run this attempt.
    Run(JobRun, Key, u64),
    /// Nothing to take: wait for a notification, and also until this instant when the slot
    /// holds the queue's one timer.
    Wait(Option<Instant>),
}

/// A far but representable instant for delays too long to add to `now`.
fn due_at(now: Instant, delay: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(delay)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

#[derive(Debug)]
pub(super) struct State {
    jobs: KeyMap<Job>,
    custom: HashMap<Box<str>, Key>,
    ready: Levels,
    delayed: BTreeSet<(Instant, Key)>,
    completed: VecDeque<Key>,
    failed: VecDeque<Key>,
    active: u64,
    next_key: Key,
    next_token: u64,
    paused: bool,
    /// Queue-wide limit (max jobs per window), set by the workers that ask for one.
    pub(super) rate: Option<(u64, Duration)>,
    /// The current window: when it ends, jobs started in it.
    window: Option<(Instant, u64)>,
    /// Slots waiting for work.
    idle: usize,
    /// The one idle slot sleeping until the next delayed job (or rate window) is due.
    timer: Option<(u64, Instant)>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            jobs: KeyMap::default(),
            custom: HashMap::new(),
            ready: Levels::default(),
            delayed: BTreeSet::new(),
            completed: VecDeque::new(),
            failed: VecDeque::new(),
            active: 0,
            // BullMQ's generated ids start at 1.
            next_key: 1,
            next_token: 0,
            paused: false,
            rate: None,
            window: None,
            idle: 0,
            timer: None,
        }
    }
}

impl State {
    /// Stores a job; returns its id (the existing job's, when its custom id is taken).
    pub(super) fn add(&mut self, job: NewJob, now: Instant, now_ms: u64) -> String {
        let NewJob { name, data, opts } = job;
        if let Some(id) = opts.id_value()
            && self.custom.contains_key(id)
        {
            return id.to_owned();
        }
        let key = self.next_key;
        self.next_key += 1;
        let delay = opts.delay_value().unwrap_or_default();
        let max_attempts = opts.max_attempts();
        let priority = opts.priority_level();
        let custom_id: Option<Box<str>> = opts.job_id.map(String::into_boxed_str);
        let state = if delay.is_zero() {
            self.ready.push(priority, key, opts.lifo);
            JobState::Waiting
        } else {
            self.delayed.insert((due_at(now, delay), key));
            JobState::Delayed
        };
        let id = match &custom_id {
            Some(id) => {
                self.custom.insert(id.clone(), key);
                id.to_string()
            }
            None => key.to_string(),
        };
        self.jobs.insert(
            key,
            Job {
                custom_id,
                name,
                data,
                priority,
                lifo: opts.lifo,
                max_attempts,
                timeout: opts.timeout,
                delay,
                remove_on_complete: opts.remove_on_complete,
                remove_on_fail: opts.remove_on_fail,
                timestamp_ms: now_ms,
                attempts_made: 0,
                state,
                result: None,
                failed_reason: None,
                finished_at: None,
                lease: None,
            },
        );
        id
    }

    /// Moves delayed jobs whose time has come to their ready level.
    fn promote_due(&mut self, now: Instant) {
        while let Some(&(due, key)) = self.delayed.first() {
            if due > now {
                break;
            }
            self.delayed.pop_first();
            if let Some(job) = self.jobs.get_mut(&key) {
                job.state = JobState::Waiting;
                self.ready.push(job.priority, key, job.lifo);
            }
        }
    }

    /// Records `done` (if any), then takes the next job for `slot` or parks it as idle.
    /// Returns the step and whether another idle slot should be woken (a job is left for it,
    /// or the queue's timer needs a new holder).
    pub(super) fn step(
        &mut self,
        slot: &mut Slot,
        done: Option<Done>,
        now: Instant,
    ) -> (Step, bool) {
        if let Some(done) = done {
            self.finish(done, now);
        }
        self.leave_idle(slot);
        let step = match self.take(slot, now) {
            Some(run) => run,
            None => {
                let wake = self.next_wake(now);
                Step::Wait(self.enter_idle(slot, wake))
            }
        };
        (step, self.should_wake(now))
    }

    /// Records `done` and leaves the slot out of the idle count (the slot stops or pauses).
    pub(super) fn park(&mut self, slot: &mut Slot, done: Option<Done>, now: Instant) -> bool {
        if let Some(done) = done {
            self.finish(done, now);
        }
        self.leave_idle(slot);
        self.should_wake(now)
    }

    fn take(&mut self, slot: &Slot, now: Instant) -> Option<Step> {
        self.promote_due(now);
        if self.paused || self.ready.len() == 0 {
            return None;
        }
        if let Some((max, per)) = self.rate {
            match &mut self.window {
                Some((end, count)) if *end > now => {
                    if *count >= max {
                        return None;
                    }
                    *count += 1;
                }
                window => *window = Some((due_at(now, per), 1)),
            }
        }
        while let Some(key) = self.ready.pop() {
            let Some(job) = self.jobs.get_mut(&key) else {
                continue;
            };
            self.next_token += 1;
            let token = self.next_token;
            job.state = JobState::Active;
            job.lease = Some((slot.worker, token));
            self.active += 1;
            let run = JobRun {
                id: job.id(key),
                name: job.name.clone(),
                data: job.data.clone(),
                attempts_made: job.attempts_made,
                max_attempts: job.max_attempts,
                timestamp_ms: job.timestamp_ms,
                delay: job.delay,
                timeout: job.timeout,
                cancel: slot.cancel.clone(),
            };
            return Some(Step::Run(run, key, token));
        }
        None
    }

    fn limited(&self, now: Instant) -> Option<Instant> {
        match (self.rate, self.window) {
            (Some((max, _)), Some((end, count))) if end > now && count >= max => Some(end),
            _ => None,
        }
    }

    /// When an idle slot should look again by itself: the next delayed job's time, or the end
    /// of the rate window while ready jobs wait for it. `None` while the queue is paused.
    fn next_wake(&self, now: Instant) -> Option<Instant> {
        if self.paused {
            return None;
        }
        let delayed = self.delayed.first().map(|&(due, _)| due);
        let window = if self.ready.len() > 0 {
            self.limited(now)
        } else {
            None
        };
        match (delayed, window) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether an idle slot should be woken: one could take a job now, or the queue's timer
    /// has no holder (or a later one than needed).
    pub(super) fn should_wake(&self, now: Instant) -> bool {
        if self.idle == 0 || self.paused {
            return false;
        }
        if self.ready.len() > 0 && self.limited(now).is_none() {
            return true;
        }
        self.next_wake(now)
            .is_some_and(|wake| self.timer.is_none_or(|(_, t)| wake < t))
    }

    fn leave_idle(&mut self, slot: &mut Slot) {
        if slot.idle {
            slot.idle = false;
            self.idle -= 1;
        }
        if self.timer.is_some_and(|(holder, _)| holder == slot.id) {
            self.timer = None;
        }
    }

    /// Counts the slot idle; makes it the timer holder when it needs to wake sooner than the
    /// current one. Returns the instant it must wake at, if it holds the timer.
    fn enter_idle(&mut self, slot: &mut Slot, wake: Option<Instant>) -> Option<Instant> {
        slot.idle = true;
        self.idle += 1;
        let wake = wake?;
        if self.timer.is_none_or(|(_, t)| wake < t) {
            self.timer = Some((slot.id, wake));
            return Some(wake);
        }
        None
    }

    fn finish(&mut self, done: Done, now: Instant) {
        let Some(job) = self.jobs.get_mut(&done.key) else {
            return;
        };
        // A lease that changed means the job was given back at a close timeout: ignore.
        if job.lease.is_none_or(|(_, token)| token != done.token) {
            return;
        }
        job.lease = None;
        job.attempts_made = job.attempts_made.saturating_add(1);
        self.active -= 1;
        match done.outcome {
            Outcome::Completed(value) => {
                job.result = Some(value);
                // BullMQ's rule: a job that completed has no failure reason.
                job.failed_reason = None;
                job.state = JobState::Completed;
                job.finished_at = Some(now);
                let retention = job.remove_on_complete;
                self.retire(done.key, retention, false, now);
            }
            Outcome::Retry { reason, delay } => {
                job.failed_reason = Some(reason);
                if delay.is_zero() {
                    job.state = JobState::Waiting;
                    self.ready.push(job.priority, done.key, job.lifo);
                } else {
                    job.state = JobState::Delayed;
                    self.delayed.insert((due_at(now, delay), done.key));
                }
            }
            Outcome::Fail { reason } => {
                job.failed_reason = Some(reason);
                job.state = JobState::Failed;
                job.finished_at = Some(now);
                let retention = job.remove_on_fail;
                self.retire(done.key, retention, true, now);
            }
        }
    }

    /// Files a finished job and trims its list by the job's retention (BullMQ trims the whole
    /// finished set by the options of the job that just finished).
    fn retire(&mut self, key: Key, retention: Retention, failed: bool, now: Instant) {
        let Self {
            jobs,
            custom,
            completed,
            failed: failed_list,
            ..
        } = self;
        let list = if failed { failed_list } else { completed };
        let (count, age) = match retention {
            Retention::KeepAll => {
                list.push_back(key);
                return;
            }
            Retention::RemoveAll => {
                remove(jobs, custom, key);
                return;
            }
            Retention::Keep { count, age } => (count, age),
        };
        list.push_back(key);
        if let Some(age) = age {
            // Finish order is list order, so the old ones are at the front.
            while let Some(&front) = list.front() {
                let old = jobs
                    .get(&front)
                    .and_then(|j| j.finished_at)
                    .is_none_or(|at| now.saturating_duration_since(at) >= age);
                if !old {
                    break;
                }
                list.pop_front();
                remove(jobs, custom, front);
            }
        }
        if let Some(count) = count {
            while list.len() > count {
                if let Some(front) = list.pop_front() {
                    remove(jobs, custom, front);
                }
            }
        }
    }

    /// Gives `worker`'s active jobs back to waiting, first in their level (they had started);
    /// returns how many.
    pub(super) fn release_worker(&mut self, worker: u64) -> usize {
        let keys: Vec<Key> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.lease.is_some_and(|(w, _)| w == worker))
            .map(|(&k, _)| k)
            .collect();
        for &key in &keys {
            if let Some(job) = self.jobs.get_mut(&key) {
                job.lease = None;
                job.state = JobState::Waiting;
                self.active -= 1;
                self.ready.push(job.priority, key, true);
            }
        }
        keys.len()
    }

    /// Pauses or resumes the whole queue; returns whether it changed.
    pub(super) fn set_paused(&mut self, paused: bool) -> bool {
        std::mem::replace(&mut self.paused, paused) != paused
    }

    pub(super) fn counts(&mut self, now: Instant) -> JobCounts {
        self.promote_due(now);
        JobCounts {
            waiting: self.ready.len() as u64,
            active: self.active,
            delayed: self.delayed.len() as u64,
            completed: self.completed.len() as u64,
            failed: self.failed.len() as u64,
        }
    }

    /// When the longest-waiting ready job became ready (its timestamp plus its delay).
    pub(super) fn oldest_waiting_ms(&mut self, now: Instant) -> Option<u64> {
        self.promote_due(now);
        self.ready
            .ends()
            .filter_map(|k| self.jobs.get(&k))
            .map(|j| {
                let delay = u64::try_from(j.delay.as_millis()).unwrap_or(u64::MAX);
                j.timestamp_ms.saturating_add(delay)
            })
            .min()
    }

    fn key_of(&self, id: &str) -> Option<Key> {
        if let Some(&key) = self.custom.get(id) {
            return Some(key);
        }
        // Only the canonical decimal form names a generated id ("07" is not job 7).
        if id.starts_with('0') || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let key: Key = id.parse().ok()?;
        self.jobs
            .get(&key)
            .is_some_and(|j| j.custom_id.is_none())
            .then_some(key)
    }

    pub(super) fn info(&mut self, id: &str, now: Instant) -> Option<JobInfo> {
        self.promote_due(now);
        let key = self.key_of(id)?;
        let job = self.jobs.get(&key)?;
        Some(JobInfo {
            id: job.id(key),
            name: job.name.clone(),
            state: job.state,
            data: job.data.clone(),
            attempts_made: job.attempts_made,
            result: job.result.clone(),
            failed_reason: job.failed_reason.clone(),
            priority: job.priority,
            timestamp_ms: job.timestamp_ms,
        })
    }
}

fn remove(jobs: &mut KeyMap<Job>, custom: &mut HashMap<Box<str>, Key>, key: Key) {
    if let Some(job) = jobs.remove(&key)
        && let Some(id) = job.custom_id
    {
        custom.remove(&id);
    }
}
