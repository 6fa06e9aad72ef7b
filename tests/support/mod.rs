//! Helpers shared by integration tests.

#![allow(dead_code)]

pub mod faulty;
pub mod ganesha;
pub mod garage;
pub mod moto;
pub mod proxy;
pub mod sftp;
pub mod smbd;
pub mod sshd;
