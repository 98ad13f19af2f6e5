fn main() {
    std::process::exit(infra::cli::main())
}
