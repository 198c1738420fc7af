//! Registering an endpoint: its resource inside a scope, labelled with its full pattern.
//!
//! Metrics label each request with the pattern of the resource that served it
//! (`/api/users/{id}`, never the raw path). `HttpRequest::match_pattern` would find it by
//! resolving the path against the route table a second time, with a regex per dynamic
//! segment: about 5 % of a worker's CPU on `GET /api/users/{id}`. Instead each resource
//! writes its pattern into the request's [`RouteSlot`] when routing reaches it, before
//! its handler runs, so even a request that times out or panics is labelled.

use std::cell::Cell;
use std::rc::Rc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{HttpMessage, Resource, web};

/// The scope every API route lives in.
pub(crate) const API: &str = "/api";
/// The admin scope, guarded as a whole (`auth::require_admin`).
pub(crate) const ADMIN: &str = "/api/admin";

/// Where the resource that serves a request leaves its pattern; put into the request's
/// extensions by the request middleware, which reads it after the call.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteSlot(Rc<Cell<Option<&'static str>>>);

impl RouteSlot {
    /// The pattern of the resource that served the request; `None` when no [`resource`]
    /// did (unknown paths, the reference page's assets).
    pub(crate) fn pattern(&self) -> Option<&'static str> {
        self.0.get()
    }
}

/// The resource for `pattern`, a full path such as `/api/users/{id}`, to register inside
/// the scope mounted at `scope` (one of [`API`], [`ADMIN`]).
///
/// # Panics
/// When `pattern` does not start with `scope`: a mistake in the route table, found when
/// the app is built (every test builds it).
pub(crate) fn resource(
    scope: &'static str,
    pattern: &'static str,
) -> Resource<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let relative = pattern
        .strip_prefix(scope)
        .unwrap_or_else(|| panic!("route {pattern} is registered outside its scope {scope}"));
    web::resource(relative).wrap_fn(move |req, service| {
        if let Some(slot) = req.extensions().get::<RouteSlot>() {
            slot.0.set(Some(pattern));
        }
        service.call(req)
    })
}
