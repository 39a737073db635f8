//! `refundry-bench compare`: two builds measured in turn.
//!
//! The machine a benchmark shares drifts by more than most changes are
//! worth (BENCHMARKS.md has examples), so one run of each build says
//! little. This runs [`load`](crate::load) for a baseline build and a
//! candidate build alternately, each on a fresh database, in the order
//! A B, B A, A B, ... so that a drift in one direction weighs on both
//! alike. It reports each pair, then the ratios candidate ÷ baseline: of
//! refunds per second, of the p99, and of the CPU spent per refund (the
//! store's writer threads, and everything together), which depend less on
//! how busy the machine is than throughput does.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::load::{self, LoadOptions, LoadReport, MixChoice, Setup};
use crate::say;

/// Options of `refundry-bench compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareOptions {
    /// The build compared against (A), e.g. a copy of target/release/refundry made before the change.
    #[arg(long, value_name = "PATH")]
    pub baseline: PathBuf,
    /// The build being judged (B).
    #[arg(long, value_name = "PATH")]
    pub candidate: PathBuf,
    /// Pairs of runs, each build once per pair.
    #[arg(long, default_value_t = 5)]
    pub pairs: usize,
    #[command(flatten)]
    pub setup: Setup,
    /// Measured seconds per mix and run.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Which mixes each run drives.
    #[arg(long, value_enum, default_value_t = MixChoice::Create)]
    pub mix: MixChoice,
}

impl CompareOptions {
    fn load_options(&self, refundry: &std::path::Path) -> LoadOptions {
        LoadOptions {
            refundry: Some(refundry.to_path_buf()),
            setup: self.setup.clone(),
            seconds: self.seconds,
            mix: self.mix,
            // the ceilings are not compared; one second each keeps them out
            // of the way
            ceiling_seconds: 1.0,
            no_report: true,
            quiet: true,
            ..LoadOptions::default()
        }
    }
}

/// What one run of one build measured in one mix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub flows_per_s: f64,
    pub p99_ms: f64,
    /// CPU µs per flow of the store's writer threads (None without /proc).
    pub writer_us: Option<f64>,
    /// CPU µs per flow of the whole machine.
    pub total_us: Option<f64>,
}

/// The samples of a run, by mix.
fn samples(report: &LoadReport) -> Vec<(String, Sample)> {
    report
        .mixes
        .iter()
        .map(|m| {
            let sample = Sample {
                flows_per_s: m.flows_per_s,
                p99_ms: m.flows.p99_ms,
                writer_us: m.cpu.as_ref().map(|c| c.micros_per(crate::cpu::WRITER, m.flows_per_s)),
                total_us: m.cpu.as_ref().map(|c| c.total_micros_per(m.flows_per_s)),
            };
            (m.mix.clone(), sample)
        })
        .collect()
}

/// Candidate ÷ baseline over the pairs of one mix.
#[derive(Debug, Clone, PartialEq)]
pub struct Ratios {
    pub pairs: usize,
    pub flows_mean: f64,
    pub flows_median: f64,
    /// Pairs in which the candidate made more refunds per second.
    pub candidate_faster: usize,
    pub p99_median: f64,
    pub writer_us_median: Option<f64>,
    pub total_us_median: Option<f64>,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// The ratios of `pairs` (baseline, candidate); `None` without pairs.
pub fn ratios(pairs: &[(Sample, Sample)]) -> Option<Ratios> {
    if pairs.is_empty() {
        return None;
    }
    let of = |f: fn(&Sample) -> f64| pairs.iter().map(|(a, b)| f(b) / f(a)).collect::<Vec<f64>>();
    let of_cpu = |f: fn(&Sample) -> Option<f64>| {
        let r: Option<Vec<f64>> = pairs.iter().map(|(a, b)| Some(f(b)? / f(a)?)).collect();
        r.map(median)
    };
    let flows = of(|s| s.flows_per_s);
    Some(Ratios {
        pairs: pairs.len(),
        flows_mean: flows.iter().sum::<f64>() / flows.len() as f64,
        flows_median: median(flows.clone()),
        candidate_faster: flows.iter().filter(|r| **r > 1.0).count(),
        p99_median: median(of(|s| s.p99_ms)),
        writer_us_median: of_cpu(|s| s.writer_us),
        total_us_median: of_cpu(|s| s.total_us),
    })
}

fn cpu(us: Option<f64>) -> String {
    us.map(|u| format!("{u:.0}")).unwrap_or_else(|| "-".into())
}

fn times(r: Option<f64>) -> String {
    r.map(|r| format!("×{r:.3}")).unwrap_or_else(|| "-".into())
}

/// The table of pairs and the ratios, per mix.
pub fn render(mixes: &[(String, Vec<(Sample, Sample)>)]) -> String {
    let mut out = String::new();
    for (mix, pairs) in mixes {
        let _ = writeln!(out, "\n{mix}: baseline (A) → candidate (B)");
        let _ = writeln!(
            out,
            "{:>4} {:>18} {:>7} {:>16} {:>18} {:>18}",
            "pair", "refunds/s", "B ÷ A", "p99 ms", "writer µs/refund", "all µs/refund"
        );
        for (i, (a, b)) in pairs.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:>4} {:>18} {:>7.3} {:>16} {:>18} {:>18}",
                i + 1,
                format!("{:.0} → {:.0}", a.flows_per_s, b.flows_per_s),
                b.flows_per_s / a.flows_per_s,
                format!("{:.1} → {:.1}", a.p99_ms, b.p99_ms),
                format!("{} → {}", cpu(a.writer_us), cpu(b.writer_us)),
                format!("{} → {}", cpu(a.total_us), cpu(b.total_us)),
            );
        }
        if let Some(r) = ratios(pairs) {
            let _ = writeln!(
                out,
                "{mix}: refunds/s ×{:.3} on average, ×{:.3} median, B faster in {} of {} pairs; median p99 ×{:.3}, \
                 writer CPU per refund {}, all CPU per refund {}",
                r.flows_mean,
                r.flows_median,
                r.candidate_faster,
                r.pairs,
                r.p99_median,
                times(r.writer_us_median),
                times(r.total_us_median)
            );
        }
    }
    out
}

/// Runs the pairs and answers the rendered comparison.
pub fn run(options: CompareOptions) -> anyhow::Result<String> {
    anyhow::ensure!(options.pairs > 0, "--pairs must be at least 1");
    let mut by_mix: Vec<(String, Vec<(Sample, Sample)>)> = Vec::new();
    for pair in 0..options.pairs {
        // A B, then B A: a machine slowing down through the pair costs the
        // second run, and each build is second every other time
        let order = if pair % 2 == 0 { [false, true] } else { [true, false] };
        let mut runs: [Vec<(String, Sample)>; 2] = [Vec::new(), Vec::new()];
        for candidate in order {
            let (label, build) =
                if candidate { ("candidate", &options.candidate) } else { ("baseline", &options.baseline) };
            say(format!("pair {} of {}: {label} {}", pair + 1, options.pairs, build.display()));
            let report = load::run(options.load_options(build))?;
            runs[usize::from(candidate)] = samples(&report);
        }
        for ((mix, a), (_, b)) in runs[0].iter().zip(&runs[1]) {
            let line = format!(
                "pair {}: {mix} {:.0} → {:.0} refunds/s (×{:.3})",
                pair + 1,
                a.flows_per_s,
                b.flows_per_s,
                b.flows_per_s / a.flows_per_s
            );
            say(line);
            match by_mix.iter_mut().find(|(m, _)| m == mix) {
                Some((_, pairs)) => pairs.push((*a, *b)),
                None => by_mix.push((mix.clone(), vec![(*a, *b)])),
            }
        }
    }
    Ok(render(&by_mix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(flows: f64, p99: f64, writer: f64, total: f64) -> Sample {
        Sample { flows_per_s: flows, p99_ms: p99, writer_us: Some(writer), total_us: Some(total) }
    }

    #[test]
    fn ratios_are_candidate_over_baseline_per_pair() {
        let pairs = [
            (s(1000.0, 20.0, 100.0, 200.0), s(1100.0, 18.0, 90.0, 190.0)),
            (s(1000.0, 20.0, 100.0, 200.0), s(900.0, 22.0, 110.0, 210.0)),
            (s(800.0, 25.0, 100.0, 250.0), s(1000.0, 20.0, 80.0, 200.0)),
        ];
        let r = ratios(&pairs).unwrap();
        assert_eq!(r.pairs, 3);
        assert!((r.flows_mean - (1.1 + 0.9 + 1.25) / 3.0).abs() < 1e-12);
        assert_eq!(r.flows_median, 1.1);
        assert_eq!(r.candidate_faster, 2);
        assert_eq!(r.p99_median, 0.9);
        assert_eq!(r.writer_us_median, Some(0.9));
        assert_eq!(r.total_us_median, Some(0.95));
        assert_eq!(ratios(&[]), None);
    }

    #[test]
    fn an_even_count_takes_the_middle_two_and_missing_cpu_says_so() {
        let no_cpu = |flows: f64| Sample { flows_per_s: flows, p99_ms: 10.0, writer_us: None, total_us: None };
        let pairs = [(no_cpu(100.0), no_cpu(110.0)), (no_cpu(100.0), no_cpu(130.0))];
        let r = ratios(&pairs).unwrap();
        assert!((r.flows_median - 1.2).abs() < 1e-12);
        assert_eq!(r.writer_us_median, None);
        let text = render(&[("create".into(), pairs.to_vec())]);
        assert!(text.contains("100 → 130"), "{text}");
        assert!(text.contains("B faster in 2 of 2 pairs"), "{text}");
        assert!(text.contains("writer CPU per refund -"), "{text}");
    }
}
