//! Generated traffic (being written).
