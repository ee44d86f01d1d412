//! Reading the conformance kit's `--json` report, for the tests that run the kit against parley
//! (`tests/conformance.rs`) and against the stand-in (`tests/conformance_standin.rs`).

use std::process::Output;

use serde_json::Value;

/// The JSON report on stdout; when it is not one, the panic shows both of the kit's outputs.
pub fn report(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the kit's stdout is not a JSON report ({e}):\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The ids of the report's cases with `status` (pass, fail, skip), in report order.
pub fn case_ids(report: &Value, status: &str) -> Vec<String> {
    report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| c["status"] == status)
        .map(|c| c["id"].as_str().unwrap_or("").to_string())
        .collect()
}
