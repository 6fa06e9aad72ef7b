//! The repository's settings, in `repo.toml`: for now, the chunker's rules and parameters.
//!
//! Chunk boundaries depend on the chunker's parameters, so every command that cuts files for a
//! repository must cut them the way that repository's chunks were cut. They are written into
//! `repo.toml` when a repository is created and read by every command from there. A
//! `repo.toml` without them (written by an earlier release, which knew only these values) means
//! the defaults of that release: FastCDC for every region, audio too. A new repository cuts
//! audio and pictures in fixed pieces ([`FASTCDC_2020_FIXED_PICTURES`]); an existing one keeps its rules, so
//! that the files it already holds keep matching the chunks it has. Bad settings are refused, naming the file, before anything is read or written.

use std::path::Path;

use serde::Deserialize;

use crate::chunk::{Chunker, FastCdc, FixedCuts, AVG_SIZE, MAX_SIZE, MIN_SIZE};
use crate::error::{Error, Result};

/// Chunking rules 4: FastCDC 2020, normalization level 1, gear seed 0, for every region. What
/// a `repo.toml` without `[chunker]` means (a repository of the first releases).
pub const FASTCDC_2020: &str = "fastcdc-2020";

/// Chunking rules 5: as [`FASTCDC_2020`], except that audio regions read as bytes are cut in
/// pieces of `avg_size` bytes (`chunk::FixedCuts::Audio`).
pub const FASTCDC_2020_FIXED_AUDIO: &str = "fastcdc-2020-fixed-audio";

/// Chunking rules 6, those of a new repository: as [`FASTCDC_2020_FIXED_AUDIO`], except that
/// embedded pictures read as bytes are cut in pieces of `avg_size` bytes too
/// (`chunk::FixedCuts::AudioAndPictures`).
pub const FASTCDC_2020_FIXED_PICTURES: &str = "fastcdc-2020-fixed-pictures";

/// Every algorithm this build knows, newest first.
pub const ALGORITHMS: [&str; 3] = [
    FASTCDC_2020_FIXED_PICTURES,
    FASTCDC_2020_FIXED_AUDIO,
    FASTCDC_2020,
];

/// `repo.toml`, as far as musicfs reads it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// `[chunker]`.
    #[serde(default)]
    pub chunker: ChunkerConfig,
}

/// `[chunker]`: how the repository's files are cut into chunks.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChunkerConfig {
    /// `"fastcdc-2020-fixed-pictures"` (rules 6), `"fastcdc-2020-fixed-audio"` (rules 5) or
    /// `"fastcdc-2020"` (rules 4), as `docs/format.md` says.
    pub algorithm: String,
    /// Smallest chunk, in bytes.
    pub min_size: u32,
    /// Target average chunk size, in bytes (a power of two).
    pub avg_size: u32,
    /// Largest chunk, in bytes.
    pub max_size: u32,
}

impl Default for ChunkerConfig {
    /// What a `repo.toml` without `[chunker]` means: the settings of the first releases, audio
    /// cut by content. A new repository gets [`ChunkerConfig::for_new_repository`].
    fn default() -> Self {
        ChunkerConfig {
            algorithm: FASTCDC_2020.to_string(),
            min_size: MIN_SIZE as u32,
            avg_size: AVG_SIZE as u32,
            max_size: MAX_SIZE as u32,
        }
    }
}

impl ChunkerConfig {
    /// The settings of a repository created now: the default sizes, audio and pictures in
    /// fixed pieces.
    pub fn for_new_repository() -> Self {
        ChunkerConfig {
            algorithm: FASTCDC_2020_FIXED_PICTURES.to_string(),
            ..ChunkerConfig::default()
        }
    }

    /// The settings whose chunker cuts by `rules` (`chunk::CHUNKING_VERSION`), sizes the
    /// defaults; `None` for rules this build does not know.
    pub fn for_rules(rules: u32) -> Option<Self> {
        ALGORITHMS
            .into_iter()
            .map(|algorithm| ChunkerConfig {
                algorithm: algorithm.to_string(),
                ..ChunkerConfig::default()
            })
            .find(|c| c.chunker().rules() == rules)
    }

    /// Which regions are cut in fixed pieces.
    fn fixed(&self) -> FixedCuts {
        match self.algorithm.as_str() {
            FASTCDC_2020 => FixedCuts::None,
            FASTCDC_2020_FIXED_AUDIO => FixedCuts::Audio,
            _ => FixedCuts::AudioAndPictures,
        }
    }

    /// The `[chunker]` section, as written into a new `repo.toml`.
    pub fn to_toml(&self) -> String {
        format!(
            "[chunker]\nalgorithm = \"{}\"\nmin_size = {}\navg_size = {}\nmax_size = {}\n",
            self.algorithm, self.min_size, self.avg_size, self.max_size
        )
    }

    /// The chunker these settings describe.
    pub fn chunker(&self) -> FastCdc {
        FastCdc::with_sizes(
            self.min_size as usize,
            self.avg_size as usize,
            self.max_size as usize,
        )
        .with_fixed(self.fixed())
    }

    fn check(&self) -> std::result::Result<(), String> {
        if !ALGORITHMS.contains(&self.algorithm.as_str()) {
            return Err(format!(
                "chunker algorithm {:?} is not known to this musicfs (it knows {FASTCDC_2020_FIXED_PICTURES:?}, {FASTCDC_2020_FIXED_AUDIO:?} and {FASTCDC_2020:?})",
                self.algorithm
            ));
        }
        let (min, avg, max) = (self.min_size, self.avg_size, self.max_size);
        if !((64..=1 << 24).contains(&max) && min >= 64 && min < avg && avg < max) {
            return Err(format!(
                "chunk sizes min {min}, avg {avg}, max {max} must satisfy 64 <= min < avg < max <= 16 MiB"
            ));
        }
        if !avg.is_power_of_two() {
            return Err(format!("avg_size {avg} must be a power of two"));
        }
        Ok(())
    }
}

impl RepoConfig {
    /// Reads `path`, a `repo.toml`; a missing file means the defaults.
    pub fn read(path: &Path) -> Result<RepoConfig> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RepoConfig::default()),
            Err(e) => return Err(Error::io(path, e)),
        };
        let bad = |why: String| Error::InvalidInput(format!("{}: {why}", path.display()));
        let config: RepoConfig = toml::from_str(&text).map_err(|e| {
            bad(e
                .to_string()
                .lines()
                .next()
                .unwrap_or("not valid TOML")
                .to_string())
        })?;
        config.chunker.check().map_err(bad)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<RepoConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo.toml");
        std::fs::write(&path, text).unwrap();
        RepoConfig::read(&path)
    }

    #[test]
    fn an_earlier_releases_comments_only_file_means_the_defaults() {
        assert_eq!(read("# comments only\n").unwrap(), RepoConfig::default());
        let written = ChunkerConfig::default().to_toml();
        assert_eq!(read(&written).unwrap(), RepoConfig::default());
    }

    #[test]
    fn other_sizes_are_read_and_bad_ones_refused_naming_the_file() {
        let c = read("[chunker]\nalgorithm = \"fastcdc-2020\"\nmin_size = 4096\navg_size = 16384\nmax_size = 65536\n")
            .unwrap();
        assert_eq!(
            (c.chunker.min_size, c.chunker.avg_size, c.chunker.max_size),
            (4096, 16384, 65536)
        );
        for bad in [
            "[chunker]\nalgorithm = \"rabin\"\nmin_size = 4096\navg_size = 16384\nmax_size = 65536\n",
            "[chunker]\nalgorithm = \"fastcdc-2020\"\nmin_size = 40000\navg_size = 16384\nmax_size = 65536\n",
            "[chunker]\nalgorithm = \"fastcdc-2020\"\nmin_size = 4096\navg_size = 20000\nmax_size = 65536\n",
            "[chunker]\nalgorithm = \"fastcdc-2020\"\n",
            "[chunkr]\n",
            "not toml at all ===",
        ] {
            let e = read(bad).unwrap_err().to_string();
            assert!(e.contains("repo.toml: "), "{bad:?}: {e}");
            assert!(!e.contains('\n'), "{bad:?}: {e}");
        }
    }
}
