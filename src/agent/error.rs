//! berthd's errors, each with an HTTP status and a stable code for the API.

use berth_bridge::{IpamError, NetlinkError, StoreError};

/// Errors of the agent. The message is what the client shows; [`AgentError::code`] is stable.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid JSON in the request body: {0}")]
    BadJson(String),
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("no such API path: {method} {path} (see docs/api.md)")]
    NoRoute { method: String, path: String },
    #[error("method {method} is not allowed on {path} (see docs/api.md)")]
    MethodNotAllowed { method: String, path: String },
    #[error("no such network: {0} (see `netctl network ls`)")]
    NoNetwork(String),
    #[error("{0}")]
    NoContainer(String),
    #[error("{0}")]
    NoEndpoint(String),
    #[error("{0}")]
    Netns(String),
    #[error("{0}")]
    AlreadyAttached(String),
    #[error("{0}")]
    PortInUse(String),
    #[error("{0}")]
    NetworkInUse(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("firewall: {0}")]
    Firewall(String),
    #[error("{0}")]
    Internal(String),
    #[error("berthd is shutting down; retry when it is back")]
    ShuttingDown,
}

impl AgentError {
    /// The stable code of the error (documented in docs/api.md).
    pub fn code(&self) -> &'static str {
        match self {
            AgentError::BadRequest(_) => "invalid_argument",
            AgentError::BadJson(_) => "invalid_json",
            AgentError::TooLarge { .. } => "body_too_large",
            AgentError::NoRoute { .. } => "no_such_route",
            AgentError::MethodNotAllowed { .. } => "method_not_allowed",
            AgentError::NoNetwork(_) => "network_not_found",
            AgentError::NoContainer(_) => "container_not_found",
            AgentError::NoEndpoint(_) => "endpoint_not_found",
            AgentError::Netns(_) => "netns_unavailable",
            AgentError::AlreadyAttached(_) => "already_attached",
            AgentError::PortInUse(_) => "port_in_use",
            AgentError::NetworkInUse(_) => "network_in_use",
            AgentError::Forbidden(_) => "forbidden",
            AgentError::Store(e) => match e {
                StoreError::BadName { .. } => "invalid_name",
                StoreError::BadBridge { .. } => "invalid_bridge",
                StoreError::BadSubnet { .. } | StoreError::NoSubnet { .. } => "invalid_subnet",
                StoreError::BadGateway { .. } => "invalid_gateway",
                StoreError::BadMtu { .. } => "invalid_mtu",
                StoreError::OverlapsNetwork { .. } | StoreError::OverlapsRoute { .. } => {
                    "subnet_overlap"
                }
                StoreError::Exists { .. } => "network_exists",
                StoreError::BridgeInUse { .. } => "bridge_in_use",
                StoreError::NotFound { .. } => "network_not_found",
                StoreError::Io { .. } | StoreError::Corrupt { .. } => "store_error",
            },
            AgentError::Ipam(e) => match e {
                IpamError::Exhausted { .. } => "network_full",
                IpamError::OutsideSubnets { .. } => "address_outside_subnet",
                IpamError::Reserved { .. } => "address_reserved",
                IpamError::InUse { .. } => "address_in_use",
                IpamError::DuplicateRequest { .. } => "invalid_argument",
                IpamError::OwnerExists { .. } => "already_attached",
                IpamError::BadSubnet { .. } => "invalid_subnet",
                IpamError::Io { .. } | IpamError::Version { .. } | IpamError::Corrupt { .. } => {
                    "lease_store_error"
                }
            },
            AgentError::Netlink(e) => match e {
                NetlinkError::NetnsGone { .. } => "netns_unavailable",
                NetlinkError::VethExists { .. } => "interface_exists",
                NetlinkError::Invalid(_) => "invalid_argument",
                NetlinkError::NotABridge { .. } => "invalid_bridge",
                _ => "netlink_error",
            },
            AgentError::Firewall(_) => "firewall_error",
            AgentError::Internal(_) => "internal",
            AgentError::ShuttingDown => "shutting_down",
        }
    }

    /// The HTTP status of the error.
    pub fn status(&self) -> u16 {
        match self.code() {
            "invalid_json"
            | "invalid_argument"
            | "invalid_name"
            | "invalid_bridge"
            | "invalid_subnet"
            | "invalid_gateway"
            | "invalid_mtu"
            | "address_outside_subnet"
            | "address_reserved"
            | "netns_unavailable" => 400,
            "forbidden" => 403,
            "method_not_allowed" => 405,
            "body_too_large" => 413,
            "no_such_route"
            | "network_not_found"
            | "container_not_found"
            | "endpoint_not_found" => 404,
            "already_attached" | "port_in_use" | "network_in_use" | "subnet_overlap"
            | "network_exists" | "bridge_in_use" | "address_in_use" | "network_full"
            | "interface_exists" => 409,
            "shutting_down" => 503,
            _ => 500,
        }
    }
}

pub type Result<T, E = AgentError> = std::result::Result<T, E>;
