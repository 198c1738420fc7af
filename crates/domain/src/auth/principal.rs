use crate::users::{Role, UserId};

/// Who is making a request, as proven by an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub role: Role,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Users may act on their own account; admins on any.
    pub fn may_manage(&self, user: UserId) -> bool {
        self.is_admin() || self.user_id == user
    }
}
