//! (being written) effective rights of the bound account, see docs/writeback.md "Enabling".
