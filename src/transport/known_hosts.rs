//! known_hosts checking (plain and hashed entries) and the opt-in first-contact write.
