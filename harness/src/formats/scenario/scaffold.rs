//! New-scenario scaffolding (being written).
