//! xen-domain-builder: see the crate's documentation (src/lib.rs).

fn main() {
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let status = builder::main_with(&argv, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(status);
}
