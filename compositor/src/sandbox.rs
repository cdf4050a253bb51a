//! wp_security_context_v1 and the sandbox policy.
//!
//! Tessera implements the protocol itself rather than through smithay's module so
//! that it can check the listening socket before accepting it (a bad fd is the
//! protocol's `invalid_listen_fd` error, not a dead event loop), refuse nesting, and
//! keep serving when an accept fails.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use smithay::reexports::calloop::generic::Generic;
use smithay::reexports::calloop::{Interest, Mode, PostAction, RegistrationToken};
use smithay::reexports::wayland_protocols::wp::security_context::v1::server::{
    wp_security_context_manager_v1::{self, WpSecurityContextManagerV1},
    wp_security_context_v1::{self, WpSecurityContextV1},
};
use smithay::reexports::wayland_server::backend::GlobalId;
use smithay::reexports::wayland_server::{
    Client, DataInit, Dispatch, DisplayHandle, GlobalDispatch, New, Resource,
};
use tessera_protocols::{ClientClass, SandboxIdentity, SandboxRule, Verdict};

use crate::state::{ClientState, Tessera};

/// The rules from the config, shared with the global filters (which run inside
/// wayland-server, outside any borrow of the state).
#[derive(Debug, Clone, Default)]
pub struct SandboxPolicy {
    rules: Arc<Mutex<Vec<SandboxRule>>>,
}

impl SandboxPolicy {
    pub fn new(rules: Vec<SandboxRule>) -> Self {
        Self {
            rules: Arc::new(Mutex::new(rules)),
        }
    }

    /// Applies to binds from now on; globals a client has bound stay bound.
    pub fn set_rules(&self, rules: Vec<SandboxRule>) {
        if let Ok(mut r) = self.rules.lock() {
            *r = rules;
        }
    }

    /// The verdict for `client` on a global of `interface`.
    pub fn verdict(&self, client: &Client, interface: &str) -> Verdict {
        let Some(data) = client.get_data::<ClientState>() else {
            return Verdict::Open;
        };
        let class = tessera_protocols::class_of(interface);
        let verdict = match self.rules.lock() {
            Ok(rules) => tessera_protocols::verdict(&data.class, class, &rules),
            Err(_) => tessera_protocols::verdict(&data.class, class, &[]),
        };
        if !verdict.allowed() && data.denials.note(interface) {
            let id = data.sandbox();
            tracing::info!(
                engine = id.and_then(|i| i.engine.as_deref()),
                app_id = id.and_then(|i| i.app_id.as_deref()),
                global = interface,
                class = class.name(),
                ?verdict,
                "privileged global hidden from a sandboxed client"
            );
        }
        verdict
    }

    /// A global filter for smithay's `new_with_filter` constructors.
    pub fn filter(
        &self,
        interface: &'static str,
    ) -> impl Fn(&Client) -> bool + Send + Sync + 'static {
        let policy = self.clone();
        move |client| policy.verdict(client, interface).allowed()
    }
}

/// What `tessera msg clients` shows about one client.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ClientInfo {
    /// Tessera's own sequence number, in connection order.
    pub id: u64,
    pub pid: Option<i32>,
    pub uid: Option<u32>,
    pub sandboxed: bool,
    pub engine: Option<String>,
    pub app_id: Option<String>,
    pub instance_id: Option<String>,
    /// Privileged globals the client was denied, in the order it met them.
    pub denied: Vec<String>,
}

impl Tessera {
    /// Adds a connection as a Wayland client of the given class.
    pub fn add_client(&mut self, stream: UnixStream, class: ClientClass) -> Option<Client> {
        self.next_client_id += 1;
        let data = ClientState::new(self.next_client_id, class);
        match self.display_handle.insert_client(stream, Arc::new(data)) {
            Ok(client) => {
                self.clients
                    .retain(|c| c.get_data::<ClientState>().is_some_and(|d| d.alive()));
                self.clients.push(client.clone());
                Some(client)
            }
            Err(err) => {
                tracing::warn!(%err, "cannot add a client");
                None
            }
        }
    }

    pub fn client_infos(&self) -> Vec<ClientInfo> {
        let dh = &self.display_handle;
        self.clients
            .iter()
            .filter_map(|c| {
                let data = c.get_data::<ClientState>()?;
                if !data.alive() {
                    return None;
                }
                let creds = c.get_credentials(dh).ok();
                let id = data.sandbox().cloned().unwrap_or_default();
                Some(ClientInfo {
                    id: data.id,
                    pid: creds.map(|c| c.pid),
                    uid: creds.map(|c| c.uid),
                    sandboxed: data.sandbox().is_some(),
                    engine: id.engine,
                    app_id: id.app_id,
                    instance_id: id.instance_id,
                    denied: data.denials.list(),
                })
            })
            .collect()
    }
}

/// Denials already logged for one client, so each is logged once.
#[derive(Debug, Default)]
pub struct Denials(Mutex<Vec<String>>);

impl Denials {
    /// Records `interface`; true the first time.
    pub fn note(&self, interface: &str) -> bool {
        let Ok(mut seen) = self.0.lock() else {
            return false;
        };
        if seen.iter().any(|s| s == interface) {
            return false;
        }
        seen.push(interface.to_owned());
        true
    }

    pub fn list(&self) -> Vec<String> {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// The manager global.
pub struct SecurityContextGlobal {
    pub global: GlobalId,
}

impl SecurityContextGlobal {
    pub fn new(dh: &DisplayHandle, policy: &SandboxPolicy) -> Self {
        let filter = policy.filter("wp_security_context_manager_v1");
        let global = dh
            .create_global::<Tessera, WpSecurityContextManagerV1, _>(1, GlobalFilter::new(filter));
        Self { global }
    }
}

/// The global data of Tessera's own globals: the sandbox filter.
pub struct GlobalFilter(Box<dyn Fn(&Client) -> bool + Send + Sync>);

impl GlobalFilter {
    pub fn new(f: impl Fn(&Client) -> bool + Send + Sync + 'static) -> Self {
        Self(Box::new(f))
    }

    pub fn allows(&self, client: &Client) -> bool {
        (self.0)(client)
    }
}

/// A context being built: the fields arrive one request at a time before `commit`.
#[derive(Default)]
pub struct ContextBuilder(Mutex<Option<PendingContext>>);

struct PendingContext {
    listen_fd: UnixListener,
    close_fd: OwnedFd,
    identity: SandboxIdentity,
}

impl GlobalDispatch<WpSecurityContextManagerV1, GlobalFilter> for Tessera {
    fn bind(
        _state: &mut Self,
        _dh: &DisplayHandle,
        _client: &Client,
        resource: New<WpSecurityContextManagerV1>,
        _filter: &GlobalFilter,
        data_init: &mut DataInit<'_, Self>,
    ) {
        data_init.init(resource, ());
    }

    fn can_view(client: Client, filter: &GlobalFilter) -> bool {
        filter.allows(&client)
    }
}

impl Dispatch<WpSecurityContextManagerV1, ()> for Tessera {
    fn request(
        _state: &mut Self,
        client: &Client,
        manager: &WpSecurityContextManagerV1,
        request: wp_security_context_manager_v1::Request,
        _data: &(),
        _dh: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        use wp_security_context_manager_v1::Error;
        let wp_security_context_manager_v1::Request::CreateListener {
            id,
            listen_fd,
            close_fd,
        } = request
        else {
            return;
        };
        // The new object must exist even when the request is refused.
        let builder = ContextBuilder::default();
        let sandboxed = client
            .get_data::<ClientState>()
            .is_some_and(|d| d.sandbox().is_some());
        if sandboxed {
            manager.post_error(Error::Nested, "a sandboxed client cannot create a context");
        } else if let Err(why) = check_listen_fd(listen_fd.as_fd()) {
            manager.post_error(Error::InvalidListenFd, why);
        } else if let Ok(mut slot) = builder.0.lock() {
            *slot = Some(PendingContext {
                listen_fd: UnixListener::from(listen_fd),
                close_fd,
                identity: SandboxIdentity::default(),
            });
        }
        data_init.init(id, builder);
    }
}

/// A listening AF_UNIX stream socket, or why not.
fn check_listen_fd(fd: BorrowedFd<'_>) -> Result<(), String> {
    let opt = |name| -> Result<libc::c_int, String> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: value and len point to a c_int and its size, as getsockopt wants.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            Ok(value)
        } else {
            Err(format!(
                "listen_fd is not a socket: {}",
                std::io::Error::last_os_error()
            ))
        }
    };
    if opt(libc::SO_DOMAIN)? != libc::AF_UNIX {
        return Err("listen_fd is not an AF_UNIX socket".into());
    }
    if opt(libc::SO_TYPE)? != libc::SOCK_STREAM {
        return Err("listen_fd is not a stream socket".into());
    }
    if opt(libc::SO_ACCEPTCONN)? == 0 {
        return Err("listen_fd is not listening (call listen() first)".into());
    }
    Ok(())
}

impl Dispatch<WpSecurityContextV1, ContextBuilder> for Tessera {
    fn request(
        state: &mut Self,
        _client: &Client,
        context: &WpSecurityContextV1,
        request: wp_security_context_v1::Request,
        builder: &ContextBuilder,
        _dh: &DisplayHandle,
        _data_init: &mut DataInit<'_, Self>,
    ) {
        use wp_security_context_v1::{Error, Request};
        let Ok(mut slot) = builder.0.lock() else {
            return;
        };
        if matches!(request, Request::Destroy) {
            return;
        }
        let Some(pending) = slot.as_mut() else {
            context.post_error(Error::AlreadyUsed, "the security context was committed");
            return;
        };
        let set = |field: &mut Option<String>, value: String, what: &str| {
            if field.is_some() {
                context.post_error(Error::AlreadySet, format!("{what} was set already"));
            } else {
                *field = Some(value);
            }
        };
        match request {
            Request::SetSandboxEngine { name } => {
                set(&mut pending.identity.engine, name, "the sandbox engine");
            }
            Request::SetAppId { app_id } => set(&mut pending.identity.app_id, app_id, "the app id"),
            Request::SetInstanceId { instance_id } => {
                set(
                    &mut pending.identity.instance_id,
                    instance_id,
                    "the instance id",
                );
            }
            Request::Commit => {
                if let Some(pending) = slot.take() {
                    state.listen_for_sandbox(pending);
                }
            }
            _ => {}
        }
    }
}

impl Tessera {
    /// Serves a committed context: accepts on its socket until its close_fd hangs up.
    fn listen_for_sandbox(&mut self, pending: PendingContext) {
        let PendingContext {
            listen_fd,
            close_fd,
            identity,
        } = pending;
        tracing::info!(
            engine = identity.engine.as_deref(),
            app_id = identity.app_id.as_deref(),
            instance_id = identity.instance_id.as_deref(),
            "security context created"
        );
        if let Err(err) = listen_fd.set_nonblocking(true) {
            tracing::warn!(%err, "security context socket");
            return;
        }
        let class = ClientClass::Sandboxed(identity);
        let listener = self.loop_handle.insert_source(
            Generic::new(listen_fd, Interest::READ, Mode::Level),
            move |_, listener, state| {
                loop {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            state.add_client(stream, class.clone());
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(err) => {
                            // The socket is unusable; stop serving it rather than spin.
                            tracing::warn!(%err, "security context listener failed");
                            return Ok(PostAction::Remove);
                        }
                    }
                }
                Ok(PostAction::Continue)
            },
        );
        let listener = match listener {
            Ok(token) => token,
            Err(err) => {
                tracing::warn!(%err, "cannot serve a security context socket");
                return;
            }
        };
        // The sandbox engine closes its end of close_fd when the sandbox goes away;
        // the fd then polls readable (hang-up) and the listener stops accepting.
        // Clients already connected stay connected, as the protocol says.
        let closer = self.loop_handle.insert_source(
            Generic::new(close_fd, Interest::READ, Mode::Level),
            move |_, _, state| {
                state.stop_listening(listener);
                Ok(PostAction::Remove)
            },
        );
        if let Err(err) = closer {
            tracing::warn!(%err, "cannot watch a security context's close_fd");
            self.stop_listening(listener);
        }
    }

    fn stop_listening(&mut self, listener: RegistrationToken) {
        tracing::info!("security context closed; its socket no longer accepts");
        self.loop_handle.remove(listener);
    }
}

impl ClientState {
    pub fn new(id: u64, class: ClientClass) -> Self {
        Self {
            compositor: Default::default(),
            class,
            id,
            denials: Denials::default(),
            alive: std::sync::atomic::AtomicBool::new(true),
        }
    }

    pub fn sandbox(&self) -> Option<&SandboxIdentity> {
        match &self.class {
            ClientClass::Sandboxed(id) => Some(id),
            ClientClass::Unrestricted => None,
        }
    }

    pub fn alive(&self) -> bool {
        self.alive.load(std::sync::atomic::Ordering::Relaxed)
    }
}
