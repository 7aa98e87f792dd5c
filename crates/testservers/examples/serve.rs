//! Starts one test server and keeps it running until stdin closes (Ctrl-D), for poking at it
//! by hand: `cargo run -p deltasync-testservers --example serve -- lighttpd`.

use deltasync_testservers::{Kind, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "lighttpd".into());
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.name() == name)
        .ok_or_else(|| {
            format!(
                "unknown server '{name}'; one of: lighttpd apache sabredav wsgidav nginx rclone"
            )
        })?;
    let server = Server::start(kind)?;
    println!(
        "{} {} {} {}",
        server.url(),
        server.user(),
        server.password(),
        server.data_dir().display()
    );
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line)? > 0 {
        line.clear();
    }
    print!("{}", server.log());
    Ok(())
}
