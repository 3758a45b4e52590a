import ArgumentParser
import Foundation
import ShoalBackup

/// Where a node ships its backups: a directory, or an S3-compatible bucket (credentials from
/// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, never from the command line).
struct BackupOptions: ParsableArguments {
    @Option(help: "Ship every primary's frames to this directory (backups and point-in-time restores).")
    var backupDir: String?

    @Option(
        help:
            "Ship backups to this S3 bucket (AWS S3, R2, MinIO); keys come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
    )
    var backupS3Bucket: String?

    @Option(help: "The S3 endpoint (default: https://s3.REGION.amazonaws.com).")
    var backupS3Endpoint: String?

    @Option(help: "The S3 region the requests are signed for.")
    var backupS3Region = "us-east-1"

    @Option(help: "A prefix for every backup key in the bucket, e.g. production/.")
    var backupS3Prefix = ""

    func validate() throws {
        if backupDir != nil && backupS3Bucket != nil {
            throw ValidationError("give --backup-dir or --backup-s3-bucket, not both")
        }
        if backupS3Bucket == nil && (backupS3Endpoint != nil || !backupS3Prefix.isEmpty) {
            throw ValidationError("--backup-s3-endpoint and --backup-s3-prefix need --backup-s3-bucket")
        }
    }

    /// The store the options name, nil for none.
    func store(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (any ObjectStore)? {
        if let backupDir {
            return try DirectoryObjectStore(root: backupDir)
        }
        guard let bucket = backupS3Bucket else { return nil }
        guard let accessKey = environment["AWS_ACCESS_KEY_ID"], !accessKey.isEmpty,
            let secretKey = environment["AWS_SECRET_ACCESS_KEY"], !secretKey.isEmpty
        else {
            throw ValidationError(
                "--backup-s3-bucket needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")
        }
        let endpointText = backupS3Endpoint ?? "https://s3.\(backupS3Region).amazonaws.com"
        guard let endpoint = URL(string: endpointText) else {
            throw ValidationError("--backup-s3-endpoint \(endpointText) is not a URL")
        }
        do {
            return try S3ObjectStore(
                .init(
                    endpoint: endpoint, bucket: bucket, region: backupS3Region, accessKey: accessKey,
                    secretKey: secretKey, keyPrefix: backupS3Prefix))
        } catch {
            throw ValidationError("\(error)")
        }
    }
}
