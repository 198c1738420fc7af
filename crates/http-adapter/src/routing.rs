//! The route table: each endpoint is registered once, here, and the app, the OpenAPI
//! document and each resource's `Allow` set are all read off that one registration.
//!
//! A handler's method and path come from its own `#[utoipa::path]` attribute, so the
//! documented operation and the served one cannot disagree; the table only groups the
//! handlers of one path into a resource and fixes the order resources are matched in.
//!
//! Why not `utoipa-actix-web`: it registers each handler as a resource of its own,
//! guarded by its method, so a request with a method the path does not serve falls
//! through every resource to `404`. Here one resource holds all of a path's methods and
//! answers any other with `405` and `Allow` (RFC 9110 §15.5.6).
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
use actix_web::http::header::{ALLOW, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{FromRequest, Handler, HttpMessage, Resource, Responder, Route, web};
use utoipa::openapi::path::HttpMethod;
use utoipa::openapi::{OpenApi, RefOr, schema::Schema};

use crate::extract::JsonLimit;
use crate::problem::Problem;

/// The scope every API route lives in.
pub(crate) const API: &str = "/api";
/// The admin scope, guarded as a whole (`auth::require_admin`): **every resource whose
/// pattern starts with it is served inside the guard.**
pub(crate) const ADMIN: &str = "/api/admin";

/// What actix needs of the service inside an app, a scope or a resource: one name for
/// the bound the builders here and in `server.rs` return.
pub trait ServesRequests:
    ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<Self::Body>,
        Error = actix_web::Error,
        InitError = (),
    >
{
    type Body: MessageBody;
}

impl<T, B> ServesRequests for T
where
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        >,
    B: MessageBody,
{
    type Body = B;
}

/// The OpenAPI side of an endpoint: the type `#[utoipa::path]` generates beside a
/// handler `h`, named `__path_h`. (Its schemas and tags come through utoipa's hidden
/// `__dev` traits, as they do for utoipa's own `OpenApi` derive.)
pub(crate) trait Documented:
    utoipa::Path + utoipa::__dev::SchemaReferences + for<'t> utoipa::__dev::Tags<'t>
{
}
impl<T> Documented for T where
    T: utoipa::Path + utoipa::__dev::SchemaReferences + for<'t> utoipa::__dev::Tags<'t>
{
}

/// Every resource of the API, in the order they are matched.
#[derive(Default)]
pub(crate) struct Routes {
    resources: Vec<ResourceEntry>,
}

/// One path and the handlers behind it.
pub(crate) struct ResourceEntry {
    pattern: &'static str,
    body_limit: Option<usize>,
    endpoints: Vec<Endpoint>,
}

struct Endpoint {
    method: Method,
    route: Route,
    /// Adds the endpoint's operation and schemas to a document; `None` for the few that
    /// the document does not describe (the WebSocket upgrade, the document itself).
    document: Option<fn(&mut OpenApi)>,
}

impl Routes {
    /// The resource for `pattern`, a full path such as `/api/users/{id}`. Resources are
    /// matched in the order they are added.
    pub(crate) fn resource(&mut self, pattern: &'static str) -> &mut ResourceEntry {
        assert!(
            pattern.starts_with(API),
            "route {pattern} is outside the {API} scope"
        );
        self.resources.push(ResourceEntry::new(pattern));
        let last = self.resources.len() - 1;
        &mut self.resources[last]
    }

    /// Adds every documented endpoint to `openapi`.
    pub(crate) fn document(&self, openapi: &mut OpenApi) {
        for endpoint in self.resources.iter().flat_map(|r| &r.endpoints) {
            if let Some(document) = endpoint.document {
                document(openapi);
            }
        }
    }

    /// The resources of the [`API`] scope and those of the [`ADMIN`] one, each ready to
    /// be registered inside its scope.
    pub(crate) fn into_scopes(self) -> (Vec<ResourceEntry>, Vec<ResourceEntry>) {
        self.resources
            .into_iter()
            .partition(|r| !r.pattern.starts_with(ADMIN))
    }
}

impl ResourceEntry {
    /// A resource outside the table (`/metrics`, which is not part of the API).
    pub(crate) fn new(pattern: &'static str) -> Self {
        Self {
            pattern,
            body_limit: None,
            endpoints: Vec::new(),
        }
    }

    /// `handler`, served at the method and path its `#[utoipa::path]` names; `doc` is the
    /// type that attribute generates (`__path_<handler>`).
    ///
    /// # Panics
    /// When the attribute names another path or more than one method: a mistake in the
    /// route table, found when the app is built (every test builds it).
    pub(crate) fn endpoint<D, F, Args>(&mut self, _doc: D, handler: F) -> &mut Self
    where
        D: Documented,
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let documented = D::path();
        assert_eq!(
            documented, self.pattern,
            "a handler documented at {documented} is registered at {}",
            self.pattern
        );
        let method = match &D::methods()[..] {
            [method] => actix_method(method),
            _ => panic!("{documented}: one method per handler"),
        };
        self.endpoints.push(Endpoint {
            route: web::route().method(method.clone()).to(handler),
            method,
            document: Some(document::<D>),
        });
        self
    }

    /// A handler the OpenAPI document does not describe.
    pub(crate) fn undocumented<F, Args>(&mut self, method: Method, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.endpoints.push(Endpoint {
            route: web::route().method(method.clone()).to(handler),
            method,
            document: None,
        });
        self
    }

    /// A JSON body limit for this resource instead of `HttpConfig::body_limit`.
    pub(crate) fn body_limit(&mut self, bytes: usize) -> &mut Self {
        self.body_limit = Some(bytes);
        self
    }

    /// The actix resource, to register inside the scope mounted at `scope`; it writes
    /// its pattern into the request's [`RouteSlot`] when routing reaches it.
    ///
    /// # Panics
    /// When the pattern does not start with `scope`.
    pub(crate) fn into_resource(self, scope: &'static str) -> Resource<impl ServesRequests> {
        let allowed = self
            .endpoints
            .iter()
            .map(|e| e.method.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let pattern = self.pattern;
        let relative = pattern
            .strip_prefix(scope)
            .unwrap_or_else(|| panic!("route {pattern} is registered outside its scope {scope}"));
        let mut resource = web::resource(relative).wrap_fn(move |req, service| {
            if let Some(slot) = req.extensions().get::<RouteSlot>() {
                slot.0.set(Some(pattern));
            }
            service.call(req)
        });
        if let Some(limit) = self.body_limit {
            resource = resource.app_data(JsonLimit(limit));
        }
        for endpoint in self.endpoints {
            resource = resource.route(endpoint.route);
        }
        resource.default_service(allow(allowed))
    }
}

fn document<D: Documented>(openapi: &mut OpenApi) {
    let mut operation = D::operation();
    operation
        .tags
        .get_or_insert_with(Vec::new)
        .extend(D::tags().into_iter().map(str::to_owned));
    openapi
        .paths
        .add_path_operation(D::path(), D::methods(), operation);
    let mut schemas: Vec<(String, RefOr<Schema>)> = Vec::new();
    D::schemas(&mut schemas);
    openapi
        .components
        .get_or_insert_with(Default::default)
        .schemas
        .extend(schemas);
}

fn actix_method(method: &HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// The answer to a method a resource does not have: 405 with the methods it has in
/// `Allow` (RFC 9110 §15.5.6), as a problem.
fn allow(methods: String) -> Route {
    let methods = HeaderValue::from_str(&methods).unwrap_or(HeaderValue::from_static(""));
    web::to(move || {
        let methods = methods.clone();
        async move {
            let mut response = Problem::for_status(StatusCode::METHOD_NOT_ALLOWED).response();
            response.headers_mut().insert(ALLOW, methods);
            response
        }
    })
}

/// Where the resource that serves a request leaves its pattern; put into the request's
/// extensions by the request middleware, which reads it after the call.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteSlot(Rc<Cell<Option<&'static str>>>);

impl RouteSlot {
    /// The pattern of the resource that served the request; `None` when none of the
    /// table did (unknown paths, the reference page's assets).
    pub(crate) fn pattern(&self) -> Option<&'static str> {
        self.0.get()
    }
}
