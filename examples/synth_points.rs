//! Writes the benchmarks' synthetic clustered points ([`twine_heatmap::synth`]) to a CSV file,
//! so that other programs (benches/datashader.sh feeds datashader with it) see exactly the
//! points the server loads.
//!
//! ```text
//! cargo run --release --example synth_points -- --count 1000000 --seed 42 --out points.csv
//! cargo run --release --example synth_points -- --count 1000000 --seed 42 --weighted --out w.csv
//! ```
//!
//! The points cover the whole Web Mercator square (world units 0..1, as
//! `clustered_points(count, seed, [0, 0, 1, 1])` draws them). The file has a header, `lon,lat`
//! (`lon,lat,weight` with `--weighted`, whose weights come from
//! [`twine_heatmap::synth::clustered_points_weighted`]), and one point per line in degrees,
//! written in the shortest form that reads back to the same f64. It is written to a temporary
//! file beside `--out` and renamed, so an interrupted run never leaves a partial file there.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use twine_heatmap::synth::{clustered_points, clustered_points_weighted};
use twine_heatmap::tile::{world_x_to_lon, world_y_to_lat};

const USAGE: &str = "usage: synth_points --count N --seed S --out FILE.csv [--weighted]";

struct Args {
    count: usize,
    seed: u64,
    out: PathBuf,
    weighted: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut count = None;
    let mut seed = None;
    let mut out = None;
    let mut weighted = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--count" => {
                let v = value("--count")?;
                count = Some(
                    v.parse()
                        .map_err(|_| format!("--count {v:?}: not a count"))?,
                );
            }
            "--seed" => {
                let v = value("--seed")?;
                seed = Some(v.parse().map_err(|_| format!("--seed {v:?}: not a u64"))?);
            }
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--weighted" => weighted = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        count: count.ok_or("--count is required")?,
        seed: seed.ok_or("--seed is required")?,
        out: out.ok_or("--out is required")?,
        weighted,
    })
}

fn write_points(args: &Args) -> std::io::Result<()> {
    let world = [0.0, 0.0, 1.0, 1.0];
    let points = if args.weighted {
        clustered_points_weighted(args.count, args.seed, world)
    } else {
        clustered_points(args.count, args.seed, world)
    };
    let mut name = args.out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    let partial = args.out.with_file_name(name);
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&partial)?);
    // Display of an f64 is its shortest exact round-trip form: full precision, no noise.
    if args.weighted {
        writeln!(out, "lon,lat,weight")?;
        for p in &points {
            let (lon, lat) = (world_x_to_lon(p.x), world_y_to_lat(p.y));
            writeln!(out, "{lon},{lat},{}", p.w)?;
        }
    } else {
        writeln!(out, "lon,lat")?;
        for p in &points {
            writeln!(out, "{},{}", world_x_to_lon(p.x), world_y_to_lat(p.y))?;
        }
    }
    out.into_inner()?.sync_all()?;
    std::fs::rename(&partial, &args.out)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("synth_points: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match write_points(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synth_points: writing {}: {e}", args.out.display());
            ExitCode::FAILURE
        }
    }
}
