//! Secret storage: the OS keyring where a persistent one works, otherwise a
//! file readable only by the owner.
//!
//! The keyring crate falls back to stores that lose secrets (an in-memory
//! mock, or the Linux kernel keyring that forgets at reboot), and a Secret
//! Service that is absent or locked can fail or wait on an unlock dialog.
//! So the keyring is used only when its store persists and a probe write,
//! read and delete finishes within a few seconds; otherwise Herald uses the
//! owner-only file and says so. Entries are namespaced by the home's id.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::home::{write_private, Home};
use crate::i18n::Lang;

const KEYRING_SERVICE: &str = "herald";
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The store that keeps a secret.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Keyring,
    #[default]
    File,
}

impl StoreKind {
    pub fn describe(self, home: &Home, lang: Lang) -> String {
        let path = home.secrets().display().to_string();
        match (self, lang) {
            (StoreKind::Keyring, Lang::En) => "the system keyring".to_owned(),
            (StoreKind::Keyring, Lang::Zh) => "系统钥匙串".to_owned(),
            (StoreKind::File, Lang::En) => format!("{path} (readable only by you)"),
            (StoreKind::File, Lang::Zh) => format!("{path}（仅你本人可读）"),
        }
    }
}

/// Reads and writes profile secrets of one home.
#[derive(Clone, Debug)]
pub struct SecretStore {
    home: Home,
    home_id: String,
}

impl SecretStore {
    pub fn new(home: &Home) -> Result<SecretStore> {
        Ok(SecretStore {
            home: home.clone(),
            home_id: home.id()?,
        })
    }

    /// Chooses where new secrets go. `HERALD_SECRET_STORE=file` or
    /// `keyring` forces a choice; by default the keyring is used when it
    /// persists and passes the probe. The second value explains a fallback.
    pub fn choose(&self) -> (StoreKind, Option<String>) {
        match std::env::var("HERALD_SECRET_STORE").as_deref() {
            Ok("file") => return (StoreKind::File, None),
            Ok("keyring") => return (StoreKind::Keyring, None),
            _ => {}
        }
        match self.probe_keyring() {
            Ok(()) => (StoreKind::Keyring, None),
            Err(reason) => (StoreKind::File, Some(reason.to_string())),
        }
    }

    fn probe_keyring(&self) -> Result<()> {
        use keyring::credential::CredentialPersistence;
        let persistence = keyring::default::default_credential_builder().persistence();
        let kept = match persistence {
            CredentialPersistence::UntilDelete => None,
            CredentialPersistence::UntilReboot => Some("forgets them at reboot"),
            CredentialPersistence::ProcessOnly => Some("forgets them when the process exits"),
            _ => Some("does not keep them"),
        };
        if let Some(kept) = kept {
            bail!("the system keyring available here {kept}");
        }
        let user = format!("{}/probe", self.home_id);
        run_with_timeout(move || {
            let entry = keyring::Entry::new(KEYRING_SERVICE, &user)?;
            entry.set_password("probe")?;
            let read = entry.get_password()?;
            let _ = entry.delete_credential();
            if read == "probe" {
                Ok(())
            } else {
                Err(keyring::Error::Invalid(
                    "probe".into(),
                    "read back differs".into(),
                ))
            }
        })
        .map_err(|e| anyhow!("the system keyring is not usable: {e}"))
    }

    pub fn save(&self, kind: StoreKind, profile: &str, secret: &str) -> Result<()> {
        match kind {
            StoreKind::Keyring => {
                let user = self.keyring_user(profile);
                let secret = secret.to_owned();
                run_with_timeout(move || {
                    keyring::Entry::new(KEYRING_SERVICE, &user)?.set_password(&secret)
                })
                .context("could not save the secret in the system keyring")
            }
            StoreKind::File => {
                let _guard = self.home.lock("secrets")?;
                let mut secrets = self.read_file()?;
                secrets.insert(profile.to_owned(), secret.to_owned());
                write_private(&self.home.secrets(), &serde_json::to_vec_pretty(&secrets)?)
            }
        }
    }

    pub fn load(&self, kind: StoreKind, profile: &str) -> Result<String> {
        match kind {
            StoreKind::Keyring => {
                let user = self.keyring_user(profile);
                run_with_timeout(move || {
                    keyring::Entry::new(KEYRING_SERVICE, &user)?.get_password()
                })
                .context("could not read the secret from the system keyring")
            }
            StoreKind::File => self.read_file()?.remove(profile).ok_or_else(|| {
                anyhow!(
                    "no secret is saved for this profile in {}",
                    self.home.secrets().display()
                )
            }),
        }
    }

    pub fn delete(&self, kind: StoreKind, profile: &str) -> Result<()> {
        match kind {
            StoreKind::Keyring => {
                let user = self.keyring_user(profile);
                run_with_timeout(move || {
                    match keyring::Entry::new(KEYRING_SERVICE, &user)?.delete_credential() {
                        Err(keyring::Error::NoEntry) => Ok(()),
                        other => other,
                    }
                })
                .context("could not delete the secret from the system keyring")
            }
            StoreKind::File => {
                let _guard = self.home.lock("secrets")?;
                let mut secrets = self.read_file()?;
                if secrets.remove(profile).is_some() {
                    write_private(&self.home.secrets(), &serde_json::to_vec_pretty(&secrets)?)?;
                }
                Ok(())
            }
        }
    }

    fn keyring_user(&self, profile: &str) -> String {
        format!("{}/{profile}", self.home_id)
    }

    fn read_file(&self) -> Result<BTreeMap<String, String>> {
        let path = self.home.secrets();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not valid JSON", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e).with_context(|| format!("could not read {}", path.display())),
        }
    }
}

/// Runs a keyring call on its own thread and gives up after a few seconds,
/// so that an unlock dialog nobody answers never blocks Herald.
fn run_with_timeout<T: Send + 'static>(
    call: impl FnOnce() -> keyring::Result<T> + Send + 'static,
) -> Result<T> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(call());
    });
    match receiver.recv_timeout(PROBE_TIMEOUT) {
        Ok(result) => result.map_err(|e| anyhow!("{e}")),
        Err(_) => bail!(
            "the keyring did not respond within {} s (is it locked?)",
            PROBE_TIMEOUT.as_secs()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::open(dir.path()).unwrap();
        let store = SecretStore::new(&home).unwrap();
        store.save(StoreKind::File, "ops", "s3cret-value").unwrap();
        store.save(StoreKind::File, "bot", "key-1").unwrap();

        let reopened = SecretStore::new(&Home::open(dir.path()).unwrap()).unwrap();
        assert_eq!(
            reopened.load(StoreKind::File, "ops").unwrap(),
            "s3cret-value"
        );
        reopened.delete(StoreKind::File, "ops").unwrap();
        assert!(reopened.load(StoreKind::File, "ops").is_err());
        assert_eq!(reopened.load(StoreKind::File, "bot").unwrap(), "key-1");
    }
}
