//! Any text handed to the config parser must come back as a config or a `ConfigError`,
//! never a panic: operators write these files by hand (DESIGN §1, "bad configs ... get a
//! clear error"). Non-UTF-8 input is skipped because `Config::load` rejects it before
//! parsing, with the reader's own error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = radiant::config::Config::from_toml_str(text, "fuzz");
    }
});
