//! The whole front end (parse, resolve, lint) and both diagnostic renderers on
//! arbitrary UTF-8 text: nothing may panic, overflow the stack or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (sources, diags) = infra::check_str("fuzz.infra", text);
    let _ = infra::diag::render(&diags, &sources, false, 100);
    let _ = infra::diag::render_json(&diags, &sources);
});
