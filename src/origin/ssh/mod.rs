//! SSH transport: sessions (russh), exec channels for the remote agent, and SFTP.
