pub mod netem;
