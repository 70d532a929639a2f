//! VoxBridge server library.
