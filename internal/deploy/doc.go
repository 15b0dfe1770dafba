// Package deploy holds the tests of the deployment files (docker-compose.yml, Dockerfile).
package deploy
