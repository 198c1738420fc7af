//! `app.users.v1.UserService` over the same `UserService` use cases as `/api/users`.

use std::sync::Arc;

use domain::users::{Role, User, UserId};
use domain::{Cursor, Limit, Version};
use ports::auth::AuthService;
use ports::client::TrustedProxies;
use ports::users::{CreateUser, ListUsers, UpdateUser, UserService, UserView};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::auth::authenticate;
use crate::deadline::{self, Deadline};
use crate::outbound::{self, ResponseStream};
use crate::pb::users::{self as pb, user_service_server};
use crate::status::{invalid, status};

pub struct UsersGrpc {
    users: Arc<dyn UserService>,
    auth: Arc<dyn AuthService>,
    /// Cancelled when the server starts shutting down.
    stop: CancellationToken,
    trusted_proxies: TrustedProxies,
}

impl UsersGrpc {
    pub fn new(
        users: Arc<dyn UserService>,
        auth: Arc<dyn AuthService>,
        stop: CancellationToken,
        trusted_proxies: TrustedProxies,
    ) -> Self {
        Self {
            users,
            auth,
            stop,
            trusted_proxies,
        }
    }
}

pub(crate) fn timestamp(at: time::OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        // Always 0..1e9, so it fits.
        nanos: i32::try_from(at.nanosecond()).unwrap_or_default(),
    }
}

fn user_pb(user: &User) -> pb::User {
    pb::User {
        id: user.id.to_string(),
        name: user.name.as_str().to_owned(),
        email: user.email.as_str().to_owned(),
        role: match user.role {
            Role::User => pb::Role::User,
            Role::Admin => pb::Role::Admin,
        } as i32,
        created_at: Some(timestamp(user.created_at)),
        updated_at: Some(timestamp(user.updated_at)),
        version: user.version.get(),
    }
}

/// A user as the caller may see them: private fields left empty on a public profile.
fn view_pb(view: &UserView) -> pb::User {
    match view {
        UserView::Full(user) => user_pb(user),
        UserView::Public(profile) => pb::User {
            id: profile.id.to_string(),
            name: profile.name.as_str().to_owned(),
            created_at: Some(timestamp(profile.created_at)),
            ..pb::User::default()
        },
    }
}

/// The most users one `ListUsers` call streams, as one REST page.
const MAX_USERS_PER_CALL: u32 = 100;

fn user_id(raw: &str) -> Result<UserId, Status> {
    raw.parse()
        .map_err(|_| invalid("id", "must be a user id (UUID)"))
}

/// The role's name as the use case reads it; any other value is refused there, after
/// the check that the caller may ask for a role at all.
fn role(raw: i32) -> &'static str {
    match pb::Role::try_from(raw) {
        Ok(pb::Role::User) => "user",
        Ok(pb::Role::Admin) => "admin",
        _ => "unspecified",
    }
}

#[tonic::async_trait]
impl user_service_server::UserService for UsersGrpc {
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let deadline = Deadline::of(&request);
        let client = crate::client::client_key(&request, &self.trusted_proxies);
        let r = request.into_inner();
        let command = CreateUser::parse(&r.name, &r.email, &r.password)
            .map_err(|errors| status(errors.into()))?;
        let user = deadline.bound(self.users.create(command, client)).await?;
        Ok(Response::new(user_pb(&user)))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = authenticate(&*self.auth, &request)?;
        let deadline = Deadline::of(&request);
        let id = user_id(&request.get_ref().id)?;
        let user = deadline.bound(self.users.get(caller, id)).await?;
        Ok(Response::new(view_pb(&user)))
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let actor = authenticate(&*self.auth, &request)?;
        let deadline = Deadline::of(&request);
        let r = request.into_inner();
        let id = user_id(&r.id)?;
        let command = UpdateUser::parse_as(
            &actor,
            r.name.as_deref(),
            r.email.as_deref(),
            r.role.map(role),
        )
        .map_err(status)?;
        let expected = r
            .expected_version
            .map(|v| Version::new(v).ok_or_else(|| invalid("expected_version", "must be positive")))
            .transpose()?;
        let user = deadline
            .bound(self.users.update(actor, id, command, expected))
            .await?;
        Ok(Response::new(user_pb(&user)))
    }

    type ListUsersStream = ResponseStream<pb::ListUsersResponse>;

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<Self::ListUsersStream>, Status> {
        let caller = authenticate(&*self.auth, &request)?;
        let deadline = Deadline::of(&request);
        let r = request.into_inner();
        let limit = match r.page_size {
            0 => Limit::DEFAULT,
            n => Limit::new(n).map_err(|e| status(e.for_field("page_size").into()))?,
        };
        let mut cursor = match r.after.as_str() {
            "" => None,
            raw => Some(Cursor::decode(raw).map_err(|e| status(e.for_field("after").into()))?),
        };
        let mut remaining = match r.max_users {
            0 => MAX_USERS_PER_CALL,
            n => n.min(MAX_USERS_PER_CALL),
        };
        // One page buffered ahead of the reader at most: a reader that stops reading
        // stops the paging, not the memory.
        let (sink, stream) = outbound::channel(limit.get() as usize);
        let users = self.users.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let produce = async {
                loop {
                    let page = users
                        .list(caller, ListUsers { limit, cursor })
                        .await
                        .map_err(status)?;
                    for user in &page.items {
                        if remaining == 0 {
                            return Ok(());
                        }
                        let item = pb::ListUsersResponse {
                            user: Some(view_pb(user)),
                            cursor: user.cursor().encode(),
                        };
                        if sink.send(item).await.is_err() {
                            return Ok(());
                        }
                        remaining -= 1;
                    }
                    match page.next_cursor {
                        Some(next) => cursor = Some(next),
                        None => return Ok(()),
                    }
                }
            };
            // The client's deadline bounds the whole stream, and a client that hangs up
            // stops the paging at once.
            let outcome = tokio::select! {
                outcome = produce => outcome,
                () = deadline.passed() => Err(deadline::exceeded()),
                () = sink.closed() => Ok(()),
                () = stop.cancelled() => Err(Status::unavailable("server shutting down; resume with `after`")),
            };
            if let Err(status) = outcome {
                sink.finish(status);
            }
        });
        Ok(Response::new(stream))
    }
}
