fn main() {
    eprintln!("cache-analytics: not implemented yet");
    std::process::exit(1);
}
