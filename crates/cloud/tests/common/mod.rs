//! The cloud's tests use the shared in-process fixture (`dirbridge_cloud::testing`).

#![allow(unused_imports)]

pub use dirbridge_cloud::testing::{
    mail_through_sink, unlimited, Cloud, Reply, ADMIN_PASSWORD, START,
};
