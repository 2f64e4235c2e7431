//! The profile file, `HERALD_HOME/profiles.json`, shared by the command
//! line, the relay and the desktop app.

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::home::{random_hex, write_private, Home};

use super::secret::SecretStore;
use super::validate::{self, Report};
use super::Profile;

#[derive(Debug, Default, Serialize, Deserialize)]
struct ProfileFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default: Option<String>,
    #[serde(default)]
    profiles: Vec<Profile>,
}

/// Profiles and their secrets in one home.
#[derive(Clone, Debug)]
pub struct ProfileStore {
    home: Home,
    secrets: SecretStore,
}

/// The result of saving a profile.
#[derive(Debug)]
pub struct Saved {
    pub profile: Profile,
    pub report: Report,
    /// The reason the secret went to the owner-only file instead of the
    /// keyring.
    pub keyring_fallback: Option<String>,
}

impl ProfileStore {
    pub fn open(home: &Home) -> Result<ProfileStore> {
        Ok(ProfileStore {
            home: home.clone(),
            secrets: SecretStore::new(home)?,
        })
    }

    pub fn home(&self) -> &Home {
        &self.home
    }

    pub fn list(&self) -> Result<Vec<Profile>> {
        Ok(self.read()?.profiles)
    }

    pub fn get(&self, name: &str) -> Result<Option<Profile>> {
        Ok(self.read()?.profiles.into_iter().find(|p| p.name == name))
    }

    pub fn find_by_relay_key(&self, key: &str) -> Result<Option<Profile>> {
        Ok(self
            .read()?
            .profiles
            .into_iter()
            .find(|p| constant_time_eq(p.relay_key.as_bytes(), key.as_bytes())))
    }

    pub fn default_name(&self) -> Result<Option<String>> {
        let file = self.read()?;
        Ok(file.default.or_else(|| match file.profiles.as_slice() {
            [only] => Some(only.name.clone()),
            _ => None,
        }))
    }

    /// Validates and saves a profile. A new profile gets a relay key; an
    /// existing one keeps its key. `secret` replaces the stored secret when
    /// given and is required for a new profile.
    pub fn save(&self, mut profile: Profile, secret: Option<&str>) -> Result<Saved> {
        let _guard = self.home.lock("profiles")?;
        let mut file = self.read()?;
        let others: Vec<Profile> = file
            .profiles
            .iter()
            .filter(|p| p.name != profile.name)
            .cloned()
            .collect();
        let report = validate::check(&profile, &others);
        if !report.is_ok() {
            return Ok(Saved {
                profile,
                report,
                keyring_fallback: None,
            });
        }

        let existing = file
            .profiles
            .iter()
            .find(|p| p.name == profile.name)
            .cloned();
        profile.relay_key = match &existing {
            Some(old) => old.relay_key.clone(),
            None => random_hex(16),
        };
        let mut keyring_fallback = None;
        match (secret, &existing) {
            (Some(secret), _) => {
                let (kind, why) = self.secrets.choose();
                self.secrets.save(kind, &profile.name, secret)?;
                if let Some(old) = &existing {
                    if old.secret_store != kind {
                        let _ = self.secrets.delete(old.secret_store, &old.name);
                    }
                }
                profile.secret_store = kind;
                keyring_fallback = why;
            }
            (None, Some(old)) => profile.secret_store = old.secret_store,
            (None, None) => bail!("a new profile needs its secret"),
        }

        // The first profile becomes the saved default, so that adding a
        // second one later does not leave requests without a profile.
        if file.default.is_none() && file.profiles.iter().all(|p| p.name == profile.name) {
            file.default = Some(profile.name.clone());
        }
        file.profiles.retain(|p| p.name != profile.name);
        file.profiles.push(profile.clone());
        file.profiles.sort_by(|a, b| a.name.cmp(&b.name));
        self.write(&file)?;
        Ok(Saved {
            profile,
            report,
            keyring_fallback,
        })
    }

    /// Removes a profile and its secret. Fails when another profile uses it
    /// as its fallback.
    pub fn remove(&self, name: &str) -> Result<bool> {
        let _guard = self.home.lock("profiles")?;
        let mut file = self.read()?;
        let Some(profile) = file.profiles.iter().find(|p| p.name == name).cloned() else {
            return Ok(false);
        };
        if let Some(user) = file
            .profiles
            .iter()
            .find(|p| p.fallback.as_deref() == Some(name))
        {
            bail!(
                "profile '{}' uses '{name}' as its fallback; change or remove that profile first",
                user.name
            );
        }
        file.profiles.retain(|p| p.name != name);
        if file.default.as_deref() == Some(name) {
            file.default = None;
        }
        self.write(&file)?;
        if let Err(error) = self.secrets.delete(profile.secret_store, name) {
            tracing::warn!(profile = name, %error, "could not delete the profile's secret");
        }
        Ok(true)
    }

    pub fn set_default(&self, name: &str) -> Result<()> {
        let _guard = self.home.lock("profiles")?;
        let mut file = self.read()?;
        if !file.profiles.iter().any(|p| p.name == name) {
            bail!("profile '{name}' not found; `herald profile list` shows the saved profiles");
        }
        file.default = Some(name.to_owned());
        self.write(&file)
    }

    pub fn secret(&self, profile: &Profile) -> Result<String> {
        self.secrets.load(profile.secret_store, &profile.name)
    }

    fn read(&self) -> Result<ProfileFile> {
        let path = self.home.profiles();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a valid profile file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ProfileFile::default()),
            Err(e) => Err(e).with_context(|| format!("could not read {}", path.display())),
        }
    }

    fn write(&self, file: &ProfileFile) -> Result<()> {
        write_private(&self.home.profiles(), &serde_json::to_vec_pretty(file)?)
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
