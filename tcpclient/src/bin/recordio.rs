//! recordio: runs a program and logs its input and output lines to stderr.
use tcpclient::relay::{run_behind_copier, Mode};

fn main() {
    let msg = ucspi::msg::Msg::new("recordio");
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.is_empty() {
        msg.usage("recordio program [ arg ... ]");
    }
    run_behind_copier(&msg, &args, Mode::Record(Vec::new()))
}
