//! Starts one test server and keeps it running until stdin closes (Ctrl-D), for poking at it
//! by hand: `cargo run -p deltasync-testservers --example serve -- lighttpd` (or `nextcloud`
//! for the in-process Nextcloud stand-in).

use std::path::Path;

use deltasync_testservers::{Kind, Nextcloud, Server};

/// Prints how to reach the server, then waits for stdin to close.
fn announce_and_wait(url: &str, user: &str, password: &str, data: &Path) -> std::io::Result<()> {
    println!("{url} {user} {password} {}", data.display());
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line)? > 0 {
        line.clear();
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "lighttpd".into());
    if name == "nextcloud" {
        let server = Nextcloud::start()?;
        let url = server.url();
        announce_and_wait(&url, server.user(), server.password(), server.data_dir())?;
        println!("{:?}", server.stats());
        return Ok(());
    }
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.name() == name)
        .ok_or_else(|| {
            format!(
                "unknown server '{name}'; one of: lighttpd apache sabredav wsgidav nginx rclone nextcloud"
            )
        })?;
    let server = Server::start(kind)?;
    announce_and_wait(
        server.url(),
        server.user(),
        server.password(),
        server.data_dir(),
    )?;
    print!("{}", server.log());
    Ok(())
}
