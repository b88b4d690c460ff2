//! `plan --check`: run a plan on in-memory node files in many orders, handshaking every link after every step.
