export { ERRORS, type ErrorCode, type ErrorDef } from './catalogue.ts';
export { HearthError, isHearthError } from './hearth-error.ts';
