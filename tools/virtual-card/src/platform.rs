//! The trussed service the applets run on: trussed's RAM platform with two backends besides
//! the core one.
//!
//! - `trussed-auth-backend`: PIN and PUK storage with retry counters (both applets).
//! - `trussed-staging`: chunked file writes (large certificates and OpenPGP data objects),
//!   wrap-key-to-file (PIV key import) and HPKE (the PIV applet's secure-messaging helpers).
//!
//! Every request from a client tries the staging backend, then the auth backend, then the core.

use trussed::backend::{Backend as _, BackendId};
use trussed::serde_extensions::{ExtensionDispatch, ExtensionId, ExtensionImpl};
use trussed::service::ServiceResources;
use trussed::types::Context;
use trussed::virt::{self, StoreConfig};
use trussed::Platform;
use trussed_auth::AuthExtension;
use trussed_auth_backend::{AuthBackend, AuthContext, FilesystemLayout};
use trussed_chunked::ChunkedExtension;
use trussed_core::api::{reply, request, Reply, Request};
use trussed_core::types::Location;
use trussed_core::Error;
use trussed_hpke::HpkeExtension;
use trussed_staging::{StagingBackend, StagingContext};
use trussed_wrap_key_to_file::WrapKeyToFileExtension;

/// The backends a client may reach, in the order trussed tries them.
#[derive(Debug, Clone, Copy)]
pub enum Backends {
    Auth,
    Staging,
}

const ORDER: &[BackendId<Backends>] = &[
    BackendId::Custom(Backends::Staging),
    BackendId::Custom(Backends::Auth),
    BackendId::Core,
];

/// The serde extensions the applets call. The numbers are this dispatcher's own wire ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extensions {
    Auth = 1,
    Chunked = 2,
    WrapKeyToFile = 3,
    Hpke = 4,
}

impl From<Extensions> for u8 {
    fn from(e: Extensions) -> u8 {
        e as u8
    }
}

impl TryFrom<u8> for Extensions {
    type Error = Error;

    fn try_from(id: u8) -> Result<Self, Error> {
        [
            Extensions::Auth,
            Extensions::Chunked,
            Extensions::WrapKeyToFile,
            Extensions::Hpke,
        ]
        .into_iter()
        .find(|e| *e as u8 == id)
        .ok_or(Error::FunctionNotSupported)
    }
}

pub struct Dispatcher {
    auth: AuthBackend,
    staging: StagingBackend,
}

#[derive(Default)]
pub struct DispatcherContext {
    auth: AuthContext,
    staging: StagingContext,
}

impl Dispatcher {
    fn new() -> Self {
        Self {
            // No hardware key: the PIN-derived keys come from a device secret kept in the
            // (RAM) filesystem, as on a device without a hardware-unique key.
            auth: AuthBackend::new(Location::Internal, FilesystemLayout::V0),
            staging: StagingBackend::new(),
        }
    }
}

impl ExtensionDispatch for Dispatcher {
    type BackendId = Backends;
    type Context = DispatcherContext;
    type ExtensionId = Extensions;

    fn core_request<P: Platform>(
        &mut self,
        backend: &Backends,
        ctx: &mut Context<DispatcherContext>,
        request: &Request,
        resources: &mut ServiceResources<P>,
    ) -> Result<Reply, Error> {
        let core = &mut ctx.core;
        match backend {
            Backends::Auth => self
                .auth
                .request(core, &mut ctx.backends.auth, request, resources),
            Backends::Staging => {
                self.staging
                    .request(core, &mut ctx.backends.staging, request, resources)
            }
        }
    }

    fn extension_request<P: Platform>(
        &mut self,
        backend: &Backends,
        extension: &Extensions,
        ctx: &mut Context<DispatcherContext>,
        request: &request::SerdeExtension,
        resources: &mut ServiceResources<P>,
    ) -> Result<reply::SerdeExtension, Error> {
        let core = &mut ctx.core;
        let auth = &mut ctx.backends.auth;
        let staging = &mut ctx.backends.staging;
        match (backend, extension) {
            (Backends::Auth, Extensions::Auth) => {
                ExtensionImpl::<AuthExtension>::extension_request_serialized(
                    &mut self.auth,
                    core,
                    auth,
                    request,
                    resources,
                )
            }
            (Backends::Staging, Extensions::Chunked) => {
                ExtensionImpl::<ChunkedExtension>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    staging,
                    request,
                    resources,
                )
            }
            (Backends::Staging, Extensions::WrapKeyToFile) => {
                ExtensionImpl::<WrapKeyToFileExtension>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    staging,
                    request,
                    resources,
                )
            }
            (Backends::Staging, Extensions::Hpke) => {
                ExtensionImpl::<HpkeExtension>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    staging,
                    request,
                    resources,
                )
            }
            _ => Err(Error::RequestNotAvailable),
        }
    }
}

impl ExtensionId<AuthExtension> for Dispatcher {
    type Id = Extensions;
    const ID: Extensions = Extensions::Auth;
}

impl ExtensionId<ChunkedExtension> for Dispatcher {
    type Id = Extensions;
    const ID: Extensions = Extensions::Chunked;
}

impl ExtensionId<WrapKeyToFileExtension> for Dispatcher {
    type Id = Extensions;
    const ID: Extensions = Extensions::WrapKeyToFile;
}

impl ExtensionId<HpkeExtension> for Dispatcher {
    type Id = Extensions;
    const ID: Extensions = Extensions::Hpke;
}

pub type Client<'a> = virt::Client<'a, Dispatcher>;

/// Runs `applet` with a trussed client named `name` on a fresh RAM store. trussed's virtual
/// platform seeds its RNG with a constant, so key generation repeats from one start to the next.
pub fn run<R>(name: &str, applet: impl FnOnce(Client<'_>) -> R) -> R {
    virt::with_platform(StoreConfig::ram(), |platform| {
        platform.run_client_with_backends(name, Dispatcher::new(), ORDER, applet)
    })
}
