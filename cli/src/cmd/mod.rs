//! One module per command.

pub mod archive;
pub mod bench;
pub mod demo;
pub mod dump;
pub mod recover;
pub mod replay;
pub mod slots;
pub mod status;
pub mod tail;
pub mod verify;
