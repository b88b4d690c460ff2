//! Validation rules applied after parsing (see docs/inventory.md).
