//! `certroll verify`: collect every node's real files and prove every link.
