//! How each WebDAV server is configured and started: its configuration files under the
//! server's folder and its command line (lighttpd, Apache, sabre/dav, wsgidav, nginx, rclone).

use super::*;

pub(crate) fn lighttpd(s: &Setup) -> std::io::Result<Command> {
    let (dir, data) = (s.dir.display(), s.data.display());
    fs::create_dir(s.dir.join("tmp"))?;
    fs::write(s.dir.join("users"), format!("{}:{}\n", s.user, s.password))?;
    let conf = s.dir.join("lighttpd.conf");
    fs::write(
        &conf,
        format!(
            r#"server.modules = ("mod_auth", "mod_authn_file", "mod_webdav")
server.document-root = "{data}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{dir}/error.log"
server.upload-dirs = ("{dir}/tmp")
server.max-worker = 0
# Without a mimetype lighttpd 1.4 sends no ETag.
mimetype.assign = (".json" => "application/json", "" => "application/octet-stream")
webdav.activate = "enable"
webdav.is-readonly = "disable"
webdav.sqlite-db-name = "{dir}/webdav.sqlite"
auth.backend = "plain"
auth.backend.plain.userfile = "{dir}/users"
auth.require = ("/" => ("method" => "basic", "realm" => "deltasync", "require" => "valid-user"))
"#,
            port = s.port
        ),
    )?;
    let mut cmd = program("lighttpd");
    cmd.arg("-D").arg("-f").arg(&conf);
    Ok(cmd)
}

pub(crate) fn apache(s: &Setup) -> std::io::Result<Command> {
    let (dir, data) = (s.dir.display(), s.data.display());
    let lock = s.dir.join("lock");
    fs::create_dir(&lock)?;
    let status = program("htpasswd")
        .args(["-b", "-c", "-B"])
        .arg(s.dir.join("htpasswd"))
        .args([s.user, s.password])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(std::io::Error::other(format!("htpasswd failed: {status}")));
    }
    let user = if is_root() {
        // mod_dav_fs writes as the user Apache drops to: give it the folders.
        let (uid, gid) = www_data_ids().ok_or_else(|| {
            std::io::Error::other("user www-data not found (it comes with apache2)")
        })?;
        for p in [s.data, lock.as_path()] {
            std::os::unix::fs::chown(p, Some(uid), Some(gid))?;
        }
        "User www-data\nGroup www-data\n"
    } else {
        ""
    };
    let conf = s.dir.join("apache2.conf");
    let m = "/usr/lib/apache2/modules";
    fs::write(
        &conf,
        format!(
            r#"ServerRoot "{dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{dir}/apache2.pid"
DefaultRuntimeDir "{dir}"
Mutex file:{dir}/lock default
ErrorLog "{dir}/error.log"
LogLevel warn
{user}LoadModule mpm_event_module {m}/mod_mpm_event.so
LoadModule authn_core_module {m}/mod_authn_core.so
LoadModule authn_file_module {m}/mod_authn_file.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule authz_user_module {m}/mod_authz_user.so
LoadModule auth_basic_module {m}/mod_auth_basic.so
LoadModule dav_module {m}/mod_dav.so
LoadModule dav_fs_module {m}/mod_dav_fs.so
StartServers 1
ServerLimit 2
ThreadsPerChild 25
MaxRequestWorkers 50
DocumentRoot "{data}"
DavLockDB "{dir}/lock/DavLock"
<Directory "{data}">
    Dav On
    AuthType Basic
    AuthName "deltasync"
    AuthUserFile "{dir}/htpasswd"
    Require valid-user
</Directory>
"#,
            port = s.port
        ),
    )?;
    let mut cmd = program("apache2");
    cmd.arg("-f").arg(&conf).arg("-DFOREGROUND");
    Ok(cmd)
}

pub(crate) fn www_data_ids() -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("www-data:"))?;
    let mut f = line.split(':').skip(2);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// A PHP single-quoted string literal.
pub(crate) fn php_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

pub(crate) fn sabredav(s: &Setup) -> std::io::Result<Command> {
    let locks = s.dir.join("locks.dat");
    let script = s.dir.join("server.php");
    fs::write(
        &script,
        format!(
            r#"<?php
require_once 'Sabre/autoload.php';

class DeltasyncAuth extends \Sabre\DAV\Auth\Backend\AbstractBasic {{
    protected function validateUserPass($username, $password) {{
        return $username === {user} && $password === {password};
    }}
}}

$server = new \Sabre\DAV\Server(new \Sabre\DAV\FSExt\Directory({data}));
$server->setBaseUri('/');
$server->addPlugin(new \Sabre\DAV\Locks\Plugin(new \Sabre\DAV\Locks\Backend\File({locks})));
$server->addPlugin(new \Sabre\DAV\Auth\Plugin(new DeltasyncAuth(), 'deltasync'));
$server->exec();
"#,
            user = php_str(s.user),
            password = php_str(s.password),
            data = php_str(&s.data.display().to_string()),
            locks = php_str(&locks.display().to_string()),
        ),
    )?;
    let mut cmd = program("php");
    cmd.env("PHP_CLI_SERVER_WORKERS", "4")
        .args([
            "-d",
            "display_errors=0",
            "-d",
            "log_errors=1",
            "-d",
            "error_reporting=E_ALL & ~E_DEPRECATED & ~E_STRICT",
            "-d",
        ])
        .arg(format!("error_log={}", s.dir.join("php.log").display()))
        .arg("-S")
        .arg(format!("127.0.0.1:{}", s.port))
        .arg(&script);
    Ok(cmd)
}

pub(crate) fn wsgidav(s: &Setup) -> std::io::Result<Command> {
    let conf = s.dir.join("wsgidav.yaml");
    // JSON is YAML: quote everything with the JSON string rules.
    let q = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
    fs::write(
        &conf,
        format!(
            r#"host: "127.0.0.1"
port: {port}
server: "cheroot"
verbose: 2
provider_mapping:
  "/": {data}
http_authenticator:
  domain_controller: null
  accept_basic: true
  accept_digest: false
  default_to_digest: false
simple_dc:
  user_mapping:
    "*":
      {user}:
        password: {password}
lock_storage: true
property_manager: true
dir_browser:
  enable: false
"#,
            port = s.port,
            data = q(&s.data.display().to_string()),
            user = q(s.user),
            password = q(s.password),
        ),
    )?;
    let bin = wsgidav_binary().unwrap_or_else(|| PathBuf::from("wsgidav"));
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(&conf);
    Ok(cmd)
}

pub(crate) fn nginx(s: &Setup) -> std::io::Result<Command> {
    let (dir, data) = (s.dir.display(), s.data.display());
    fs::create_dir(s.dir.join("tmp"))?;
    fs::write(
        s.dir.join("htpasswd"),
        format!("{}:{{PLAIN}}{}\n", s.user, s.password),
    )?;
    let user = if is_root() { "user root;\n" } else { "" };
    let conf = s.dir.join("nginx.conf");
    fs::write(
        &conf,
        format!(
            r#"load_module /usr/lib/nginx/modules/ngx_http_dav_ext_module.so;
{user}daemon off;
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 128; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {data};
        client_max_body_size 0;
        location / {{
            dav_methods PUT DELETE MKCOL COPY MOVE;
            dav_ext_methods PROPFIND OPTIONS;
            dav_access user:rw group:rw all:r;
            auth_basic "deltasync";
            auth_basic_user_file {dir}/htpasswd;
        }}
    }}
}}
"#,
            port = s.port
        ),
    )?;
    let mut cmd = program("nginx");
    cmd.arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(s.dir)
        .arg("-e")
        .arg(s.dir.join("error.log"));
    Ok(cmd)
}

pub(crate) fn rclone(s: &Setup) -> std::io::Result<Command> {
    let conf = s.dir.join("rclone.conf");
    fs::write(&conf, "")?;
    let mut cmd = program("rclone");
    cmd.args(["serve", "webdav"])
        .arg(s.data)
        .arg("--addr")
        .arg(format!("127.0.0.1:{}", s.port))
        .args(["--user", s.user, "--pass", s.password])
        .arg("--config")
        .arg(&conf)
        .arg("--log-file")
        .arg(s.log.with_file_name("error.log"));
    Ok(cmd)
}
