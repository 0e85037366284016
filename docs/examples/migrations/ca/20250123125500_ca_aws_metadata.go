// Placeholder for Lamassu's upstream Go migration 20250123125500 (ca), compiled into the service and
// applied before the move to one database. The module recognises .go files and never runs them; a pending
// one needs a Python port (<version>_<name>.py) of the same version.
package migrations
