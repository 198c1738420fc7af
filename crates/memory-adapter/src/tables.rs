use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::posts::{Post, PostId};
use domain::users::{Credentials, UserId};

/// Every in-memory table behind one lock, so a step touching several (deleting a user
/// and their posts) is atomic, like one SQL statement.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    pub(crate) users: HashMap<UserId, Credentials>,
    pub(crate) posts: HashMap<PostId, Post>,
}

pub(crate) type Shared = Arc<Mutex<Tables>>;
