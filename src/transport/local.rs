//! The local transport: a node's files and commands on this machine (`transport = "local"`).
