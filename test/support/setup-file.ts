// Runs in every test worker before its test files: the one-time imports our crypto stack needs.
import 'reflect-metadata';
