//! The latency histogram: exact small values, quantiles within one per cent.

use super::*;

#[test]
fn quantiles_are_within_one_percent() {
    let mut h = Histogram::default();
    for v in 1..=100_000u64 {
        h.record(v * 1000);
    }
    for (q, want) in [
        (0.5, 50_000_000.0),
        (0.99, 99_000_000.0),
        (0.999, 99_900_000.0),
    ] {
        let got = h.quantile(q) as f64;
        assert!((got - want).abs() / want < 0.01, "q{q}: {got} vs {want}");
    }
    assert_eq!(h.quantile(1.0), 100_000_000);
}

#[test]
fn small_values_are_exact() {
    let mut h = Histogram::default();
    for v in [3, 3, 7, 100] {
        h.record(v);
    }
    assert_eq!(h.quantile(0.5), 3);
    assert_eq!(h.quantile(0.75), 7);
    assert_eq!(h.quantile(1.0), 100);
}
