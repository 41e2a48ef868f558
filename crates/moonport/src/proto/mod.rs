//! Protocol cores: parsing and building the formats scripts speak. Nothing
//! here knows about Lua or sockets.

pub mod url;
