//! The folder that contains everything Herald keeps, and owner-only file I/O.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// The data folder: `HERALD_HOME`, or the platform's data folder for the
/// app (`~/.local/share/herald` on Linux).
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// Resolves the folder from `HERALD_HOME` or the platform default and
    /// creates it if needed.
    pub fn from_env() -> Result<Home> {
        let root = match std::env::var_os("HERALD_HOME").filter(|v| !v.is_empty()) {
            Some(path) => PathBuf::from(path),
            None => directories::ProjectDirs::from("", "", "herald")
                .context("could not find the user's data folder; set HERALD_HOME")?
                .data_dir()
                .to_path_buf(),
        };
        Home::open(root)
    }

    pub fn open(root: impl Into<PathBuf>) -> Result<Home> {
        let root = root.into();
        fs::create_dir_all(&root)
            .with_context(|| format!("could not create the data folder {}", root.display()))?;
        restrict_dir(&root);
        Ok(Home { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn profiles(&self) -> PathBuf {
        self.root.join("profiles.json")
    }

    pub fn secrets(&self) -> PathBuf {
        self.root.join("secrets.json")
    }

    pub fn tokens(&self) -> PathBuf {
        self.root.join("tokens.json")
    }

    pub fn database(&self) -> PathBuf {
        self.root.join("herald.db")
    }

    pub fn relay_json(&self) -> PathBuf {
        self.root.join("relay.json")
    }

    pub fn relay_token(&self) -> PathBuf {
        self.root.join("relay-token")
    }

    pub fn lock_file(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.lock"))
    }

    /// Returns a random identifier of this folder, created on first use. It
    /// namespaces keyring entries so that two homes never share secrets.
    pub fn id(&self) -> Result<String> {
        let path = self.root.join("home-id");
        match fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
            _ => {
                let _guard = self.lock("home-id")?;
                if let Ok(id) = fs::read_to_string(&path) {
                    if !id.trim().is_empty() {
                        return Ok(id.trim().to_owned());
                    }
                }
                let id = random_hex(8);
                write_private(&path, id.as_bytes())?;
                Ok(id)
            }
        }
    }

    /// Takes an exclusive lock shared by every Herald process of this home,
    /// held until the returned file is dropped.
    pub fn lock(&self, name: &str) -> Result<File> {
        let path = self.lock_file(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("could not open {}", path.display()))?;
        file.lock()
            .with_context(|| format!("could not lock {}", path.display()))?;
        Ok(file)
    }
}

/// Writes `bytes` to `path` atomically (a temporary file, then a rename),
/// readable and writable by the owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| -> io::Result<()> {
        let mut options = OpenOptions::new();
        options.create(true).write(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("could not write {}", path.display()))
}

/// Limits a folder to its owner. On Windows the per-user data folder's
/// access list already does this.
fn restrict_dir(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(error) = fs::set_permissions(path, fs::Permissions::from_mode(0o700)) {
            tracing::warn!(path = %path.display(), %error, "could not restrict the data folder to its owner");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Returns `bytes` random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// Masks a secret for display: `ab****yz`, or `****` when it is too short
/// to show any of it safely.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 8 {
        return "****".to_owned();
    }
    let head: String = chars[..2].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}****{tail}")
}

/// Returns the current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_hides_the_middle() {
        assert_eq!(mask("abcdefghyz"), "ab****yz");
        assert_eq!(mask("short"), "****");
        assert_eq!(mask("中文密钥很长很长吗"), "中文****长吗");
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        write_private(&path, b"{}").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn home_id_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::open(dir.path()).unwrap();
        let first = home.id().unwrap();
        assert_eq!(first.len(), 16);
        assert_eq!(home.id().unwrap(), first);
    }
}
