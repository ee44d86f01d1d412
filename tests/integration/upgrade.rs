//! A data directory written by the release before `seq` (store format 4) upgrades in place with
//! nothing lost. The fixture (`tests/fixtures/format-4.*`) is made by [`make_fixture`] with the
//! old binary.

mod make_fixture;
