use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use domain::jobs::{Job, JobId};
use domain::posts::{Post, PostId};
use domain::users::{Credentials, UserId};
use tokio::sync::Notify;

/// Every in-memory table behind one lock, so a step touching several (a user and their
/// welcome job; a user and their posts) is atomic, like one SQL transaction.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    pub(crate) users: HashMap<UserId, Credentials>,
    pub(crate) posts: HashMap<PostId, Post>,
    pub(crate) jobs: HashMap<JobId, Job>,
    /// Lease deadlines of running jobs.
    pub(crate) leases: HashMap<JobId, time::OffsetDateTime>,
}

/// The tables and a signal for job workers waiting on new work.
#[derive(Debug, Default)]
pub(crate) struct Store {
    tables: Mutex<Tables>,
    pub(crate) job_added: Notify,
}

impl Store {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Tables> {
        crate::lock(&self.tables)
    }
}

pub(crate) type Shared = Arc<Store>;
