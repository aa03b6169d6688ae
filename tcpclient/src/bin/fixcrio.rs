//! fixcrio: runs a program with a CR added before every bare LF in both directions.
use tcpclient::relay::{run_behind_copier, Mode};

fn main() {
    let msg = ucspi::msg::Msg::new("fixcrio");
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.is_empty() {
        msg.usage("fixcrio program [ arg ... ]");
    }
    run_behind_copier(
        &msg,
        &args,
        Mode::FixCr(Default::default(), Default::default()),
    )
}
