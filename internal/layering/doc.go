// Package layering holds the test that keeps the imports in the layers
// DESIGN.md draws: a package may import only packages of lower layers.
package layering
