//! One module per command.

pub mod bench;
pub mod demo;
pub mod dump;
pub mod recover;
pub mod slots;
pub mod status;
pub mod tail;
pub mod verify;
