//! What can go wrong in the agent, as one typed enum with sentences an admin can act on.

use std::path::PathBuf;

use thiserror::Error;

use crate::link::LinkError;

#[derive(Debug, Error)]
pub enum AgentError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the agent is not registered in {0}: run `dirbridge agent register --data-dir {0} --cloud URL --token-file FILE`")]
    NotRegistered(PathBuf),
    #[error("the agent in {0} is already registered: use a new data directory to register again")]
    AlreadyRegistered(PathBuf),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("no connector named {name} in {dir}: add one with `dirbridge agent connector add`")]
    NoSuchConnector { name: String, dir: PathBuf },
    #[error(transparent)]
    Cloud(#[from] LinkError),
    #[error("directory ({connector}): {source}")]
    Directory {
        connector: String,
        #[source]
        source: ldap::LdapError,
    },
    #[error("connector space database: {0}")]
    Space(#[from] sqlx::Error),
    #[error("{0}")]
    Interrupted(String),
    /// An include OU of the scope no longer exists (the sentence says where it may have gone
    /// and the command that updates the scope).
    #[error("{0}")]
    ScopeRootMissing(String),
}

impl AgentError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AgentError {
        let path = path.into();
        move |source| AgentError::Io { path, source }
    }

    pub(crate) fn ldap(connector: &str) -> impl FnOnce(ldap::LdapError) -> AgentError {
        let connector = connector.to_owned();
        move |source| AgentError::Directory { connector, source }
    }
}
