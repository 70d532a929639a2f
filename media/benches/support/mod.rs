pub mod cpu_time;
