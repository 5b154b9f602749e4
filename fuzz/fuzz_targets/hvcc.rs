#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kamera_worker::fuzzing::hvcc(data));
